"""Each run's hyperparameters, from wherever the researcher recorded them.

Sweeps record their settings in three places, and a run can use any mix of them:

1. a config file in the run folder (`CONFIG_FILE_NAMES`, first listed wins per key);
2. the folder name (`target_k=2.4,eta=2.0,seed=1`, `target_k-2.4_eta-2.0`, `seed1`);
3. what the log itself prints (`meta`: TARGET_K, parameter count, layers, Kmax, ...).

The sources are merged in that order of precedence, so an explicit config beats a
folder name, which beats what the log implies. Keys go through `normalize_key` so that
`TARGET_K`, `target_k` and `targetk` land in one column of the sweep table; `ALIASES`
lists every spelling that is folded together.

`hparams_for` returns an `HParams` named tuple `(values, sources, messages)`:
`values` maps key to a scalar (int, float, bool or str), `sources` maps the same keys to
where each value came from (the config file's name, `"folder name"` or `"log"`), and
`messages` lists human-readable notes about files that could not be used. Nothing in
here raises on bad input: a broken config file is a message, not an exception.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from ponder_parse.files.limits import InputTooLarge, NotARegularFile, read_regular_file

CONFIG_FILE_NAMES: tuple[str, ...] = (
    "config.json",
    "config.yaml",
    "config.yml",
    "hparams.yaml",
    "args.json",
)
"""Config files looked for in a run folder, highest precedence first."""

SOURCE_FOLDER = "folder name"
SOURCE_LOG = "log"
SOURCE_USER = "user"

# Canonical key -> other spellings. Matching ignores case, `_`, `-` and spaces, so
# `TARGET_K`, `target-k` and `targetk` all match `target_k` without being listed.
ALIASES: dict[str, tuple[str, ...]] = {
    "target_k": ("target_depth",),
    "eta": ("reward_eta",),
    "lambda_min": ("lam_min", "lambda_p_min"),
    "lambda_max": ("lam_max", "lambda_p_max"),
    "lambda_p": ("lam_p", "λ_p", "cli_lambda_p", "lambda_p_init", "init_lambda_p"),
    "halt_thr": ("halt_threshold",),
    "ponder_start": (),
    "kmax": ("k_max", "max_k"),
    "lr": ("learning_rate",),
    "seed": ("random_seed",),
    "variant": (),
    "params": ("n_params", "num_params"),
    "d_model": ("hidden_size",),
    "n_layers": ("num_layers", "n_layer"),
    "n_heads": ("num_heads", "n_head"),
    "experts": (),
    "emb": (),
    "ponder": (),
}
"""Every spelling folded into one key. The canonical keys also fix the column order of
the sweep table (ponder controller settings first, model shape last)."""

# What the log says (`Run.meta` key) -> hyperparameter key. The first meta key that has a
# value wins (`n_layers` counted from layer lines before the INIT line's `L=`).
META_KEYS: dict[str, str] = {
    "target_k": "target_k",
    "cli_lambda_p": "lambda_p",
    "kmax": "kmax",
    "variant": "variant",
    "params": "params",
    "d_model": "d_model",
    "n_layers": "n_layers",
    "n_heads": "n_heads",
    "n_layers_cfg": "n_layers",
    "experts": "experts",
    "emb": "emb",
    "ponder": "ponder",
}

MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_KEYS = 2000
MAX_CONFIG_DEPTH = 8
_MAX_REPR_NODES = 200


def _squash(key: str) -> str:
    return re.sub(r"[\s_\-]+", "", key.strip().lower())


_ALIAS_INDEX: dict[str, str] = {
    _squash(spelling): canonical
    for canonical, spellings in ALIASES.items()
    for spelling in (canonical, *spellings)
}


class HParams(NamedTuple):
    """Values, where each came from, and notes about sources that could not be read."""

    values: dict[str, Any]
    sources: dict[str, str]
    messages: list[str]


def normalize_key(key: str) -> str:
    """One spelling per hyperparameter, so runs configured by different hands line up.

    Lowercased, runs of spaces/dashes become `_`, and any spelling in `ALIASES` becomes its
    canonical key. Unknown keys are kept (lowercased) rather than guessed at.
    """
    text = re.sub(r"[\s\-]+", "_", str(key).strip().lower())
    return _ALIAS_INDEX.get(_squash(text), text)


def is_known_key(key: str) -> bool:
    return _squash(str(key)) in _ALIAS_INDEX


def key_order(keys: Iterable[str]) -> list[str]:
    """Known keys in `ALIASES` order, then the rest alphabetically: a stable column order."""
    known = list(ALIASES)
    rank = {k: i for i, k in enumerate(known)}
    return sorted(set(keys), key=lambda k: (0, rank[k], "") if k in rank else (1, 0, k))


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf|infinity)", re.I)
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def parse_scalar(text: str) -> Any:
    """A string as the number or boolean it spells, else the string itself.

    Needed because folder names are text, and because YAML 1.1 reads `3e-4` (no dot) as a
    string: without this, one run's learning rate would be text and the next one's a float.
    """
    t = text.strip()
    low = t.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    if _INT.fullmatch(t):
        return int(t)
    if _FLOAT.fullmatch(t):
        return float(t)
    return t


def _short_repr(value: Any) -> str:
    """Compact JSON-ish text of a list or dict, bounded: YAML aliases can make a small file
    describe an exponentially large structure, which must not be expanded."""
    nodes = 0

    def walk(v: Any, depth: int) -> str:
        nonlocal nodes
        nodes += 1
        if nodes > _MAX_REPR_NODES or depth > MAX_CONFIG_DEPTH:
            raise OverflowError
        if isinstance(v, Mapping):
            inner = ", ".join(f"{k}: {walk(x, depth + 1)}" for k, x in v.items())
            return "{" + inner + "}"
        if isinstance(v, list | tuple | set):
            return "[" + ", ".join(walk(x, depth + 1) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else str(_scalar(v))

    try:
        return walk(value, 0)
    except OverflowError:
        return "[…]" if isinstance(value, list | tuple | set) else "{…}"


def _scalar(value: Any) -> Any:
    """A config value as something one table cell can hold."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return parse_scalar(value)
    if isinstance(value, _dt.date | _dt.datetime | _dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple | set | Mapping):
        return _short_repr(value)
    return str(value)


class _TooLarge(Exception):
    pass


def _flatten(data: Mapping[Any, Any]) -> dict[str, Any]:
    """Nested sections become dotted keys (`model.d_model`): a table column per leaf."""
    out: dict[str, Any] = {}

    def walk(d: Mapping[Any, Any], prefix: str, depth: int) -> None:
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, Mapping) and v and depth < MAX_CONFIG_DEPTH:
                walk(v, key, depth + 1)
            else:
                out[key] = v
            if len(out) > MAX_CONFIG_KEYS:
                raise _TooLarge

    walk(data, "", 0)
    return out


def normalize_mapping(data: Mapping[Any, Any]) -> dict[str, Any]:
    """A (possibly nested) config as flat, normalized keys with scalar values.

    A nested key whose last part is a known hyperparameter (`controller.TARGET_K`) is lifted
    to the bare key (`target_k`) when nothing else claims that key, so a run configured with
    sections compares with one configured by folder name. `None` values are dropped: they
    say nothing and would otherwise hide a lower-precedence source's value.
    """
    flat = _flatten(data)
    normalized: dict[str, Any] = {}
    for raw_key, value in flat.items():
        parts = [normalize_key(p) for p in str(raw_key).split(".")]
        v = _scalar(value)
        if v is None:
            continue
        normalized[".".join(parts)] = v
    by_leaf: dict[str, list[str]] = {}
    for key in normalized:
        if "." in key:
            leaf = key.rsplit(".", 1)[1]
            if leaf in ALIASES:
                by_leaf.setdefault(leaf, []).append(key)
    for leaf, keys in by_leaf.items():
        if len(keys) == 1 and leaf not in normalized:
            normalized[leaf] = normalized.pop(keys[0])
    return normalized


def read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    """One config file as normalized values, or an empty dict and the reason it was unusable."""
    label = path.name
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8-sig")
    except InputTooLarge:
        return {}, f"{label}: ignored, larger than {MAX_CONFIG_BYTES // 1024} KiB"
    except NotARegularFile:
        return {}, f"{label}: ignored, not a regular file (a FIFO, device or folder)"
    except UnicodeDecodeError:
        return {}, f"{label}: ignored, not UTF-8 text"
    except OSError as exc:
        return {}, f"{label}: could not be read ({exc.strerror or type(exc).__name__})"
    # YAML is imported only for a YAML file: most runs carry config.json, and the app's
    # start should not pay for a parser it may never use.
    is_json = path.suffix.lower() == ".json"
    errors: tuple[type[Exception], ...] = (ValueError,)
    if not is_json:
        import yaml

        errors = (ValueError, yaml.YAMLError)
    try:
        data = (json.loads(text) if text.strip() else None) if is_json else yaml.safe_load(text)
    except errors as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            {},
            f"{label}: ignored, not valid {'JSON' if label.endswith('json') else 'YAML'} ({first})",
        )
    except RecursionError:
        return {}, f"{label}: ignored, nested too deeply"
    if data is None:
        return {}, None
    if not isinstance(data, Mapping):
        return (
            {},
            f"{label}: ignored, expected a mapping of names to values, found {type(data).__name__}",
        )
    try:
        return normalize_mapping(data), None
    except _TooLarge:
        return {}, f"{label}: ignored, more than {MAX_CONFIG_KEYS} settings"


# --- folder names ---------------------------------------------------------------------

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DASH_PAIR = re.compile(
    rf"(?:^|(?<=[_,;\s]))(?P<key>[A-Za-z][A-Za-z0-9_]*?)-(?P<val>{_NUMBER})(?=$|[_,;\s])"
)
_GLUED = re.compile(
    r"(?:^|(?<=[_,;\s\-]))(?P<key>[A-Za-z]+)(?P<val>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?=$|[_,;\s\-])"
)


def _choose_key(text: str) -> str | None:
    """The key in the text before `=`.

    Leading `_`-separated words holding a digit are dropped (`run3_seed` -> `seed`,
    `20240105_lr` -> `lr`): those are run labels and dates, never part of a setting's
    name. Plain words are kept (`data_seed` stays `data_seed`, not `seed`): guessing that
    `exp_lr` means `lr` would be wrong for `warmup_lr`.
    """
    words = text.split("_")
    while words and (not words[0] or any(ch.isdigit() for ch in words[0])):
        words.pop(0)
    key = "_".join(words)
    return key if _KEY.fullmatch(key) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_value_key(mid: str) -> tuple[str, str | None]:
    """Split `2.4_eta` (between two `=`) into the previous value and the next key.

    Keys and text values may both contain `_`. Preferred, in order: a numeric value before
    a known key, a numeric value before any key, a known key, the first `_`.
    """
    candidates = [
        (mid[:p], _choose_key(mid[p + 1 :])) for p, ch in enumerate(mid) if ch == "_" and p > 0
    ]
    splits = [(v, k) for v, k in candidates if k]
    numeric = [(v, k) for v, k in splits if _is_number(parse_scalar(v))]
    for group in (
        [(v, k) for v, k in numeric if is_known_key(k)],
        numeric,
        [(v, k) for v, k in splits if is_known_key(k)],
        splits,
    ):
        if group:
            return group[0]
    return mid, None


def _clean_value(value: str) -> Any:
    parsed = parse_scalar(value)
    if isinstance(parsed, str) and "_" in parsed:
        head = parse_scalar(parsed.split("_", 1)[0])
        if _is_number(head):
            return head  # `seed=1_final`: the number, not the label after it
    return parsed


def _parse_eq_chunk(chunk: str) -> dict[str, Any]:
    pieces = chunk.split("=")
    out: dict[str, Any] = {}
    key = _choose_key(pieces[0])
    for i in range(1, len(pieces)):
        if i < len(pieces) - 1:
            value, next_key = _split_value_key(pieces[i])
        else:
            value, next_key = pieces[i], None
        if key is not None and value:
            out[normalize_key(key)] = _clean_value(value)
        key = next_key
        if key is None and i < len(pieces) - 1:
            break  # `a=1=2`: no way to tell what the rest means
    return out


def parse_folder_name(name: str) -> dict[str, Any]:
    """Hyperparameters spelled in a folder name, conservatively.

    - `key=value` pairs separated by `,`, `;`, `_` or spaces: `target_k=2.4,eta=2.0,seed=1`,
      `lr=3e-4_seed=2`. When a name contains any `=`, only this form is read.
    - otherwise `key-value` pairs whose value is a number (`target_k-2.4_eta-2.0`), and a
      known key glued to a number (`seed1`, `eta2.0`, `kmax4`); unknown glued words such as
      `run3` or `v2` are left alone.
    Values become int/float/bool where they parse. Anything ambiguous is skipped rather
    than guessed.
    """
    out: dict[str, Any] = {}
    if "=" in name:
        for chunk in re.split(r"[,;\s]+", name):
            if "=" in chunk:
                out.update(_parse_eq_chunk(chunk))
        return out
    for m in _DASH_PAIR.finditer(name):
        key = _choose_key(m.group("key"))
        if key is not None:
            out[normalize_key(key)] = parse_scalar(m.group("val"))
    for m in _GLUED.finditer(name):
        if is_known_key(m.group("key")):
            out.setdefault(normalize_key(m.group("key")), parse_scalar(m.group("val")))
    return out


def _folder_values(run_dir: Path | None, run_name: str) -> dict[str, Any]:
    """Read every component of the run's name, outermost first, then its folder: a sweep
    laid out as `target_k=2.4/seed=1/` spreads its settings over several levels."""
    names = [p for p in re.split(r"[/\\]", run_name) if p]
    if run_dir is not None:
        names.append(run_dir.name)
    out: dict[str, Any] = {}
    for n in dict.fromkeys(names):
        out.update(parse_folder_name(n))
    return out


def _log_values(meta: Mapping[str, Any], variant: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta_key, key in META_KEYS.items():
        value = meta.get(meta_key)
        if value is None or isinstance(value, list | dict):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out.setdefault(key, _scalar(value) if isinstance(value, str) else value)
    if variant is not None:
        out["variant"] = variant
    return out


def _config_files(run_dir: Path) -> list[Path]:
    """Config files present, in precedence order, matched case-insensitively. Anything
    under a config file's name that is not a folder counts: a FIFO or a device there is
    reported by `read_config`, not passed over."""
    try:
        present = {p.name.lower(): p for p in run_dir.iterdir() if not p.is_dir()}
    except OSError:
        return []
    return [present[n] for n in CONFIG_FILE_NAMES if n in present]


def hparams_for(
    run_dir: Path | None,
    run_name: str,
    meta: Mapping[str, Any],
    *,
    variant: str | None = None,
) -> HParams:
    """A run's hyperparameters: config files, then the folder name, then the log.

    `variant` (the `Run.variant` the loader detected) is recorded as a log value; a
    `meta["variant"]` is used when it is not given. Unpack as
    `values, sources, messages = hparams_for(...)`.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    messages: list[str] = []

    def add(found: Mapping[str, Any], source: str) -> None:
        for k, v in found.items():
            if k not in values:
                values[k] = v
                sources[k] = source

    if run_dir is not None and run_dir.is_dir():
        for path in _config_files(run_dir):
            found, problem = read_config(path)
            if problem:
                messages.append(problem)
            add(found, path.name)
    add(_folder_values(run_dir, run_name), SOURCE_FOLDER)
    add(_log_values(meta, variant), SOURCE_LOG)
    ordered = key_order(values)
    return HParams({k: values[k] for k in ordered}, {k: sources[k] for k in ordered}, messages)


def apply_user_tags(values: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """Tags edited in the app on top of the run's values; the user always wins.

    Keys are normalized like every other source; text values are parsed (`"2.4"` -> 2.4)
    because an editor hands back strings; a value of `None` or `""` deletes the key, which
    is how a user says "this run has no such setting". Returns a new dict.
    """
    out = dict(values)
    for raw_key, raw_value in edits.items():
        key = normalize_key(raw_key)
        if not key:
            continue
        value = raw_value.strip() if isinstance(raw_value, str) else raw_value
        if value is None or value == "":
            out.pop(key, None)
        else:
            out[key] = _scalar(value)
    return out


def apply_user_sources(sources: Mapping[str, str], edits: Mapping[str, Any]) -> dict[str, str]:
    """The `sources` that go with `apply_user_tags(values, edits)`: edited keys say "user"."""
    out = dict(sources)
    for raw_key, raw_value in edits.items():
        key = normalize_key(raw_key)
        value = raw_value.strip() if isinstance(raw_value, str) else raw_value
        if value is None or value == "":
            out.pop(key, None)
        elif key:
            out[key] = SOURCE_USER
    return out


def tags_frame(values: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> pl.DataFrame:
    """A run's hyperparameters as an editable / readable table: `key`, `value` (as text,
    the way an editor hands it back) and, given `sources`, `from`."""
    data: dict[str, list[str]] = {"key": list(values), "value": [str(v) for v in values.values()]}
    if sources is not None:
        data["from"] = [sources.get(k, "") for k in values]
    return pl.DataFrame(data, schema=dict.fromkeys(data, pl.String))


def tag_changes(values: Mapping[str, Any], edited: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """The user edits that turn `values` into the edited `(key, value)` rows.

    An editor hands back every row, changed or not, and blank rows for ones being typed:
    only real changes are returned (values parsed as the other sources are), and a key
    the user removed maps to None, which `apply_user_tags` reads as "delete".
    """
    new: dict[str, Any] = {}
    for key, value in edited:
        if key is None or not str(key).strip():
            continue
        new[str(key).strip()] = parse_scalar(str(value))
    removed = {k: None for k in values if k not in new}
    return {k: v for k, v in new.items() if values.get(k) != v} | removed
