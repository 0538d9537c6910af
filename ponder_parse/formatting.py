"""How a single value reads in a table cell, for the CLI and the app alike.

Both print summary numbers next to "not known" cells; one rule keeps a missing value
from reading as zero and a value that does not take the format from raising.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"


def fmt(value: Any, spec: str = ".4g", missing: str = MISSING) -> str:
    """`value` formatted with `spec`; `missing` for None; text as it is when `spec` does
    not apply (a string, a bool given a float spec)."""
    if value is None:
        return missing
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def edit_step(value: float | None) -> float:
    """The step of a number input editing `value`: a tenth of its order of magnitude, fine
    enough for a λ_p of 1e-4 and for a window of 500 alike."""
    if not value or not math.isfinite(value):
        return 0.01
    return float(10 ** (math.floor(math.log10(abs(value))) - 1))
