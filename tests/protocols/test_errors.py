"""Wire errors: dead-letter subjects."""

from __future__ import annotations

from protocols.errors import DEAD_LETTER_SUBJECTS, dead_letter_subject


def test_dead_letter_subject_falls_under_the_dead_letter_stream() -> None:
    """Each stream's dead-letter subject is one token below the stream's wildcard."""
    subject = dead_letter_subject("TROUPE_TASKS")
    assert subject == "troupe.dlq.TROUPE_TASKS"
    assert subject.startswith(DEAD_LETTER_SUBJECTS.removesuffix(">"))
