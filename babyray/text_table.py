"""Fixed-width text tables of dict rows, as the state commands and the memory report print them."""

from __future__ import annotations

from typing import Any

__all__ = ["cell", "format_table"]


def cell(value: Any) -> str:
    """One value as table text: "-" for none, floats to 3 places, dicts as k=v, lists joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ",".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def format_table(rows: list[dict], columns: list[tuple[str, str, int]]) -> str:
    """A fixed-width text table of ``columns`` (field, header, width); a cell wider than its
    column is cut with '~' (the last column is never cut)."""

    def fit(text: str, width: int, last: bool) -> str:
        return text if last or len(text) <= width else text[: width - 1] + "~"

    lines = ["  ".join(f"{header:<{width}}" for _, header, width in columns).rstrip()]
    last = len(columns) - 1
    for row in rows:
        lines.append(
            "  ".join(
                f"{fit(cell(row.get(key)), width, i == last):<{width}}"
                for i, (key, _, width) in enumerate(columns)
            ).rstrip()
        )
    return "\n".join(lines)
