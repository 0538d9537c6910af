"""The process-wide part of a first page, done before any browser asks for it.

`streamlit run app.py` does nothing until a browser connects: the first session's script
then imports Altair, Polars and the data layer, parses the runs and builds the first chart,
while the server sat idle the 1–3 s the browser spent loading Streamlit's frontend. The
launcher (`python -m ponder_app`, see `__main__`) starts the same server and, beside it,
`start()`: a thread that imports what every first page needs and parses the configured
runs into the caches all sessions share, with the per-step frame and the phases the step
line draws first. A session that arrives before it is done waits on the cache's own lock
for the run in progress instead of parsing it twice; nothing else differs from
`streamlit run app.py`.

Only what is identical for every session is done here: runs from `--runs` and
`PONDER_RUNS` (or, with neither and no `--store`, the sample sweep), keyed exactly as
`state.load_all` keys them, with no phase overrides (those are per session), and the rows
of every `--store` folder. A failure is logged and left for the session to
report as it always does.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def warm(argv: Sequence[str], env_paths: Sequence[str] | None = None) -> float:
    """Import the first page's modules, load the runs `argv` (the app's own arguments,
    `--runs A B`) names and open its stores (`--store DIR`); returns the seconds it took."""
    t0 = time.perf_counter()
    # What every first page needs: the frame and its helpers (Altair, Polars, the data
    # layer), pandas and pyarrow, which Streamlit converts every chart's and table's data
    # with, and the chart and page helpers.
    importlib.import_module("ponder_app.preload")
    from ponder_app import charts, chooser, prepare, registry, source, state, ui  # noqa: F401
    from ponder_parse.files.loader import expand_paths

    stores = source.cli_stores(argv)
    paths = [
        *state.cli_paths(argv),
        *(state.env_paths() if env_paths is None else env_paths),
    ]
    if not paths and not stores:  # what the frame shows then: the sample sweep
        paths = [str(state.SAMPLE_RUNS)]
    if stores:
        # The store's rows (every run, no table read), which the Runs page lists.
        try:
            source.opened_stores(stores)
        except Exception:  # noqa: BLE001 - the session reports a broken store itself
            logger.debug("opening %s failed", stores, exc_info=True)
    run_paths, _ = expand_paths(paths)
    loaded = []
    for p in run_paths:
        try:
            run, key = state._load_one(p, live=False)
            # `Context.key`: the content key and the run's name (made unique per load;
            # a name shared by two runs is renamed there, and simply not warmed here).
            ckey = f"{key}|{run.name}"
            loaded.append((ckey, run, state._column_counts(ckey, run)))
            state._phases(ckey, (), run)
        except Exception:  # noqa: BLE001 - the session reports a broken run itself
            logger.debug("warming %s failed", p, exc_info=True)
    # The frames the step line opens with: the columns of its default metrics.
    first = prepare.default_step_columns(c for _, _, c in loaded)
    for ckey, run, _ in loaded:
        try:
            state.per_step_frame(ckey, run, first)
        except Exception:  # noqa: BLE001 - as above
            logger.debug("warming %s failed", run.name, exc_info=True)
    return time.perf_counter() - t0


SERVER_WAIT_S = 30.0


def server_started() -> bool:
    """Whether Streamlit's runtime is up and serving (its state leaves INITIAL once the
    server listens)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.runtime import RuntimeState

    return Runtime.exists() and Runtime.instance().state is not RuntimeState.INITIAL


def start(argv: Sequence[str]) -> threading.Thread:
    """`warm` in a daemon thread (it must never keep the server from stopping).

    The thread first waits (up to `SERVER_WAIT_S`) for the server to
    listen: the imports hold the interpreter lock, and done beside the server's own start
    they delay its first answer by as much as they take; done after it, they overlap the
    second the browser spends loading Streamlit's frontend, when the server is idle."""

    def run() -> None:
        deadline = time.monotonic() + SERVER_WAIT_S
        while not server_started() and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            took = warm(argv)
        except Exception:  # noqa: BLE001 - warming is an optimisation, never an error
            logger.warning("warming the caches failed", exc_info=True)
        else:
            logger.info("first-page work done in %.2f s", took)

    thread = threading.Thread(target=run, name="ponder-warm", daemon=True)
    thread.start()
    return thread
