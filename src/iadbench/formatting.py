"""How numbers appear in tables and messages: one formatter for the report, the CLI and the README benchmarks."""

from __future__ import annotations

import math
from typing import Any

MISSING = "–"  # an undefined value (NaN, None): never printed as 0


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers to ``digits`` places; None, NaN and inf as an en dash; anything else as text."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return MISSING if value is None else str(value)
    return MISSING if not math.isfinite(x) else f"{x:.{digits}f}"
