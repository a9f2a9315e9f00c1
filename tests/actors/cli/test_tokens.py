"""The login token and URL files ``troupe up`` saves for the dashboard and the CLI."""

from __future__ import annotations

import stat
from pathlib import Path

from actors.cli.tokens import _write_private


def test_a_saved_file_is_replaced_whole_never_seen_empty_or_half_written(tmp_path: Path) -> None:
    """A reader holding the old file still reads it whole; the new one is private."""
    path = tmp_path / "gateway-token"
    _write_private(path, "trp_old\n")
    with path.open() as reader:
        _write_private(path, "trp_new\n")
        assert reader.read() == "trp_old\n"
    assert path.read_text() == "trp_new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["gateway-token"]
