"""The CLI's plain-text tables: left-aligned columns two spaces apart."""

from __future__ import annotations

from actors.cli.columns import columns


def test_columns_are_as_wide_as_their_widest_cell_and_lines_end_without_blanks() -> None:
    """Each column pads to its widest cell; a short last cell leaves no trailing spaces."""
    table = columns([("NAME", "STATE", "NOTE"), ("a-long-name", "ok", ""), ("b", "DEGRADED", "x")])
    assert table.splitlines() == [
        "NAME         STATE     NOTE",
        "a-long-name  ok",
        "b            DEGRADED  x",
    ]


def test_a_header_alone_is_one_line() -> None:
    """With no rows under it, the table is its header."""
    assert columns([("KEY", "AGE")]) == "KEY  AGE"
