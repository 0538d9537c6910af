"""Hyperparameters from config files, folder names and the log, in that order of precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder_parse.files.hparams import (
    ALIASES,
    CONFIG_FILE_NAMES,
    HParams,
    apply_user_sources,
    apply_user_tags,
    hparams_for,
    key_order,
    normalize_key,
    normalize_mapping,
    parse_folder_name,
    parse_scalar,
    tag_changes,
    tags_frame,
)

META = {
    "params": 451234567,
    "init": "INIT | PARAMS: 451234567 | ...",
    "d_model": 512,
    "n_layers": 8,
    "n_heads": 16,
    "experts": "4r+4n",
    "kmax": 4,
    "target_k": 2.4,
    "target_k_source": "deadband",
    "restarts": 1,
    "deadband_step": 1900,
    "cli_lambda_p": 0.003,
}


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("TARGET_K", "target_k"),
        ("target_k", "target_k"),
        ("targetk", "target_k"),
        ("Target-K", "target_k"),
        ("eta", "eta"),
        ("REWARD_ETA", "eta"),
        ("lam_min", "lambda_min"),
        ("LAMBDA_MIN", "lambda_min"),
        ("lam_max", "lambda_max"),
        ("halt_thr", "halt_thr"),
        ("HALT_THRESHOLD", "halt_thr"),
        ("PONDER_START", "ponder_start"),
        ("Seed", "seed"),
        ("learning_rate", "lr"),
        ("some_other key", "some_other_key"),
    ],
)
def test_normalize_key(spelling: str, canonical: str) -> None:
    assert normalize_key(spelling) == canonical


def test_aliases_are_unambiguous() -> None:
    """Every listed spelling folds into its own key, never into another one's."""
    for canonical, spellings in ALIASES.items():
        for spelling in (canonical, *spellings):
            assert normalize_key(spelling) == canonical, spelling


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2.4", 2.4),
        ("3e-4", 3e-4),
        ("-1", -1),
        ("7", 7),
        ("true", True),
        ("Off", False),
        ("cosine", "cosine"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_parse_scalar(text: str, value: object) -> None:
    got = parse_scalar(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("target_k=2.4,eta=2.0,seed=1", {"target_k": 2.4, "eta": 2.0, "seed": 1}),
        ("target_k=2.4;eta=2.0 seed=1", {"target_k": 2.4, "eta": 2.0, "seed": 1}),
        ("target_k=2.4_eta=2.0_seed=1", {"target_k": 2.4, "eta": 2.0, "seed": 1}),
        ("TARGET_K=2.4_REWARD_ETA=2", {"target_k": 2.4, "eta": 2}),
        ("target_k-2.4_eta-2.0", {"target_k": 2.4, "eta": 2.0}),
        ("lr=3e-4", {"lr": 3e-4}),
        ("lr-3e-4_seed-2", {"lr": 3e-4, "seed": 2}),
        ("run3_target_k=2.4", {"target_k": 2.4}),
        ("data_seed=3", {"data_seed": 3}),
        ("sched=cosine_warm_lr=1e-5", {"sched": "cosine_warm", "lr": 1e-5}),
        ("seed=1_final", {"seed": 1}),
        ("ponder=on", {"ponder": True}),
        ("seed1", {"seed": 1}),
        ("tk2.4_eta2.0_seed3", {"eta": 2.0, "seed": 3}),
        ("log_kronecker_adaptive", {}),
        ("run-2024-01-05", {}),
        ("model-v2", {}),
        ("run3", {}),
        ("a=1=2", {"a": 1}),
    ],
)
def test_parse_folder_name(name: str, expected: dict[str, object]) -> None:
    assert parse_folder_name(name) == expected


def test_normalize_mapping_flattens_and_lifts_known_keys() -> None:
    got = normalize_mapping(
        {
            "controller": {"TARGET_K": 2.4, "lam_min": "1e-4"},
            "optim": {"lr": "3e-4", "betas": [0.9, 0.95]},
            "model": {"seed": 1},
            "data": {"seed": 2},
            "notes": None,
        }
    )
    assert got == {
        "target_k": 2.4,
        "lambda_min": 1e-4,
        "lr": 3e-4,
        "optim.betas": "[0.9, 0.95]",
        "model.seed": 1,  # two sections claim `seed`: neither is lifted
        "data.seed": 2,
    }


def test_config_beats_folder_beats_log(tmp_path: Path) -> None:
    run = tmp_path / "target_k=1.3,eta=4,seed=7"
    run.mkdir()
    (run / "config.yaml").write_text("TARGET_K: 2.0\nponder:\n  halt_thr: 0.5\n")
    values, sources, messages = hparams_for(run, run.name, META, variant="model3b")
    assert messages == []
    assert values["target_k"] == 2.0 and sources["target_k"] == "config.yaml"
    assert values["halt_thr"] == 0.5 and sources["halt_thr"] == "config.yaml"
    assert values["eta"] == 4 and sources["eta"] == "folder name"
    assert values["seed"] == 7 and sources["seed"] == "folder name"
    assert values["kmax"] == 4 and sources["kmax"] == "log"
    assert values["lambda_p"] == 0.003 and sources["lambda_p"] == "log"
    assert values["variant"] == "model3b" and sources["variant"] == "log"
    assert values["params"] == 451234567
    assert "restarts" not in values and "init" not in values
    assert list(values) == key_order(values)
    assert set(values) == set(sources)


def test_config_files_in_precedence_order(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"eta": 1.0}))
    (tmp_path / "config.yml").write_text("eta: 2.0\nlr: 3e-4\n")
    (tmp_path / "args.json").write_text(json.dumps({"eta": 3.0, "lr": 1.0, "seed": 5}))
    values, sources, _ = hparams_for(tmp_path, "x", {})
    assert (values["eta"], sources["eta"]) == (1.0, "config.json")
    assert (values["lr"], sources["lr"]) == (3e-4, "config.yml")
    assert (values["seed"], sources["seed"]) == (5, "args.json")
    assert CONFIG_FILE_NAMES[0] == "config.json"


def test_log_only_and_no_folder(tmp_path: Path) -> None:
    meta = {"target_k": 1.3, "kmax": 4, "variant": "smollm", "target_k_source": "ctrl_err"}
    result = hparams_for(None, "target_k=9/seed=3", meta)
    assert isinstance(result, HParams)
    assert result.values == {"target_k": 9, "kmax": 4, "seed": 3, "variant": "smollm"}
    assert result.sources["kmax"] == "log" and result.sources["target_k"] == "folder name"


def test_nested_run_name_deeper_wins(tmp_path: Path) -> None:
    run = tmp_path / "seed=2"
    run.mkdir()
    values, sources, _ = hparams_for(run, "eta=3,seed=1/seed=2", {})
    assert values == {"eta": 3, "seed": 2}


def test_init_line_fields() -> None:
    meta = {"n_layers_cfg": 8, "ponder": "OFF", "emb": "Kronecker(D=8192)+tok_embed"}
    values, _, _ = hparams_for(None, "run", meta)
    assert values == {"n_layers": 8, "emb": "Kronecker(D=8192)+tok_embed", "ponder": False}
    values, _, _ = hparams_for(None, "run", meta | {"n_layers": 6})
    assert values["n_layers"] == 6


def test_non_finite_and_missing_log_values_are_skipped() -> None:
    values, _, _ = hparams_for(None, "run", {"target_k": float("nan"), "kmax": None})
    assert values == {}


@pytest.mark.parametrize(
    ("filename", "content", "needle"),
    [
        ("config.yaml", "eta: [1, 2\n", "not valid YAML"),
        ("config.json", "{eta: 1", "not valid JSON"),
        ("args.json", "[1, 2, 3]", "expected a mapping"),
        ("hparams.yaml", b"\xff\xfe\x00bad", "not UTF-8"),
    ],
)
def test_broken_config_is_a_message(
    tmp_path: Path, filename: str, content: str | bytes, needle: str
) -> None:
    path = tmp_path / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    values, sources, messages = hparams_for(tmp_path, "eta=5", {"kmax": 4})
    assert values == {"eta": 5, "kmax": 4}
    assert len(messages) == 1 and messages[0].startswith(filename) and needle in messages[0]


def test_yaml_alias_bomb_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("eta: 2.0")
    (tmp_path / "config.yaml").write_text("\n".join(lines) + "\n")
    values, _, _ = hparams_for(tmp_path, "x", {})
    assert values["eta"] == 2.0
    assert values["a8"] == "[…]"


def test_empty_config_is_fine(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("")
    assert hparams_for(tmp_path, "seed=1", {}) == HParams({"seed": 1}, {"seed": "folder name"}, [])


def test_apply_user_tags() -> None:
    values = {"target_k": 2.4, "seed": 1, "eta": 2.0}
    sources = {"target_k": "log", "seed": "folder name", "eta": "config.json"}
    edits = {"TARGET_K": "1.3", "seed": "", "note": "baseline", "halt_thr": 0.5}
    assert apply_user_tags(values, edits) == {
        "target_k": 1.3,
        "eta": 2.0,
        "note": "baseline",
        "halt_thr": 0.5,
    }
    assert values["target_k"] == 2.4  # not modified in place
    assert apply_user_sources(sources, edits) == {
        "target_k": "user",
        "eta": "config.json",
        "note": "user",
        "halt_thr": "user",
    }


def test_tags_frame() -> None:
    values = {"target_k": 2.4, "seed": 1, "ponder": True}
    t = tags_frame(values)
    assert t.columns == ["key", "value"]
    assert t.rows() == [("target_k", "2.4"), ("seed", "1"), ("ponder", "True")]
    with_src = tags_frame(values, {"target_k": "log", "seed": "folder name"})
    assert with_src["from"].to_list() == ["log", "folder name", ""]
    assert tags_frame({}).columns == ["key", "value"]


def test_tag_changes_only_what_the_user_changed() -> None:
    values = {"target_k": 2.4, "seed": 1, "eta": 2.0}
    edited = [("target_k", "2.4"), ("seed", "2"), (" note ", "x"), (None, "lost"), ("  ", "1")]
    changes = tag_changes(values, edited)
    # unchanged target_k left out, seed parsed, note trimmed, eta removed, blank keys ignored
    assert changes == {"seed": 2, "note": "x", "eta": None}
    assert apply_user_tags(values, changes) == {"target_k": 2.4, "seed": 2, "note": "x"}
    assert tag_changes(values, [(k, str(v)) for k, v in values.items()]) == {}
