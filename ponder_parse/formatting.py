"""How a single value reads in a table cell, for the CLI and the app alike.

Both print summary numbers next to "not known" cells; one rule keeps a missing value
from reading as zero and a value that does not take the format from raising.
"""

from __future__ import annotations

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
