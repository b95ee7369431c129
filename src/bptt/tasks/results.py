"""Formatting of results: numbers for tables, the markdown table of the suite."""

from __future__ import annotations


def format_value(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.4g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    return str(v)
