"""The app's pages, declared once: the navigation, each page's heading, the tests and the
README's pages table all read this list, so a title or an order changes in one place.

A page's script lives in `pages/<id>.py`; Streamlit derives the page's URL (`/step_line`)
from the file name, so the id, the file and the URL stay one name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ENTRYPOINT = Path(__file__).resolve().parent.parent / "app.py"
"""The frame: `streamlit run app.py` starts here, and every page runs inside it."""


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: where its script is and how the app presents it."""

    id: str
    title: str
    icon: str
    caption: str
    default: bool = False

    @property
    def path(self) -> str:
        """The script, relative to `app.py` (what `st.Page` and `st.switch_page` take)."""
        return f"pages/{self.id}.py"

    def st_page(self) -> st.Page:
        """The page for `st.navigation` (needs a running script: `st.Page` resolves the
        path against the entrypoint's folder)."""
        return st.Page(self.path, title=self.title, icon=self.icon, default=self.default)


HOME = PageSpec(
    "home",
    "Runs",
    ":material/table_rows:",
    "Every loaded run: how far it got, how it ended, and whether its adaptive-depth "
    "machinery is healthy.",
    default=True,
)
STEP_LINE = PageSpec(
    "step_line",
    "Step line",
    ":material/show_chart:",
    "Every per-step number the trainer prints (levels 1 and 4 of the guide), runs overlaid. "
    "Faint: raw values; bold: smoothed. Dashed lines: fixed references and the red-flag thresholds (grey), each run's own (its colour).",
)
LAYER_HEATMAPS = PageSpec(
    "layer_heatmaps",
    "Layer heatmaps",
    ":material/grid_on:",
    "Per-layer recurrence stats (level 2, every 10 steps) as layer × step. "
    "One shared colour scale across runs, so colours compare directly.",
)
SURVIVAL_TRACES = PageSpec(
    "survival_traces",
    "Survival traces",
    ":material/timeline:",
    "s_trace is the survival probability entering each pass (level 3, every 50 steps). "
    "Each trace is classified into the guide's patterns: healthy sharp drop, not stopping "
    "(ponder collapse), over-penalized (stops after k=1), gate stuck at 0.5, or other.",
)
PHASE_COMPARISON = PageSpec(
    "phase_comparison",
    "Phase comparison",
    ":material/view_week:",
    "Force-2 warmup → gate learning → economic control. Boundaries are read from each log "
    "where it proves them (else the trainer defaults) and can be edited per run.",
)
RED_FLAGS = PageSpec(
    "red_flags",
    "Red flags",
    ":material/flag:",
    "Every row of the guide's red-flag table as a rule over each run, plus NaN/inf losses, "
    "λ_p pinned at a clamp, restarts and unparsed lines. 'Sustained' means a window, not a spike.",
)
ECONOMICS = PageSpec(
    "economics",
    "Recurrence economics",
    ":material/paid:",
    "From the ponder start the controller prices extra passes (λ_p) and pays a coupon when "
    "recurrence lowers the loss (ΔCE > 0). Healthy: λ_p settles (deadband [DB] engages), "
    "ECONOMIC WIN outnumbers TAX ONLY, ΔCE mostly positive.",
)
ECONOMICS_TABS: tuple[str, ...] = (
    "Controller: λ_p, depth, CTRL_ERR",
    "Win and confidence rates",
    "Policy-step quality",
)
"""The Economics page's tabs, in order (one is drawn at a time: `ui.lazy_tabs`)."""
HEATMAP_TABS: tuple[str, ...] = ("Heatmaps per run", "Difference from the baseline")
"""The Layer heatmaps page's tabs when a baseline is set (one is drawn at a time: the
differences are as many maps again)."""
GENERATIONS = PageSpec(
    "generations",
    "Generations",
    ":material/notes:",
    "Samples the trainer generated every 500 steps. Model output is shown verbatim as text, "
    "never rendered.",
)
SWEEP = PageSpec(
    "sweep",
    "Sweep",
    ":material/scatter_plot:",
    "Hyperparameters come from config files in each run folder, key=value tokens in the folder "
    "name, and what the log itself says (in that order). Edit or add tags below.",
)

PAGES: tuple[PageSpec, ...] = (
    HOME,
    STEP_LINE,
    LAYER_HEATMAPS,
    SURVIVAL_TRACES,
    PHASE_COMPARISON,
    RED_FLAGS,
    ECONOMICS,
    GENERATIONS,
    SWEEP,
)
"""In navigation order; the first is the default page, served at the app's root."""

_BY_ID = {p.id: p for p in PAGES}


def page(page_id: str) -> PageSpec:
    """The page with this id; an unknown id is a programming error, said with the known ones."""
    try:
        return _BY_ID[page_id]
    except KeyError:
        raise KeyError(f"no page {page_id!r}; the pages are {sorted(_BY_ID)}") from None


def navigation_pages() -> list[st.Page]:
    """The pages for `st.navigation`, in order."""
    return [p.st_page() for p in PAGES]
