"""Plain-text tables as every ``troupe`` listing prints them."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["columns"]


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Return ``rows`` (the header first) as left-aligned columns two spaces apart.

    Each column is as wide as its widest cell; trailing blanks are stripped
    from every line.

    Args:
        rows: the table's rows, each with as many cells as the first.
    """
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
