"""The README's promises: its commands exist and its client example is the tested file."""

from __future__ import annotations

import re
from pathlib import Path

from actors.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_raw_client_example_is_the_tested_example_file() -> None:
    """The nats-py snippet in the README is examples/raw_client.py verbatim (which a test runs)."""
    source = (REPO / "examples" / "raw_client.py").read_text()
    body = source[source.index("import asyncio") :]
    assert body in README
    assert "import actors" not in body
    assert "from actors" not in body
    assert "protocols" not in body


def test_readme_names_the_two_commands() -> None:
    """`make demo` and `make test` are the documented entry points and exist in the Makefile."""
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "bench", "lint"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.MULTILINE)


def test_every_troupe_command_in_the_readme_exists() -> None:
    """Each `troupe COMMAND` line in the README's shell examples is a real subcommand."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    used = set(re.findall(r"^(?:\.venv/bin/)?troupe ([a-z]+)", README, re.MULTILINE))
    assert used, "the README shows troupe commands"
    assert used <= commands, used - commands


def test_readme_links_the_one_packaged_nats_conf() -> None:
    """The README points at actors/runtime/nats.conf, the file `troupe up` runs, and no other."""
    from actors.runtime.server import default_config_path

    links = set(re.findall(r"\]\(([^)]*nats\.conf)\)", README))
    assert links == {"actors/runtime/nats.conf"}
    assert (REPO / "actors/runtime/nats.conf").resolve() == default_config_path().resolve()
    assert not (REPO / "nats.conf").exists()


def test_readme_names_every_role_and_how_to_log_in() -> None:
    """Each nats.conf role, `troupe creds` and the TROUPE_NATS_* variables are in the README."""
    from actors.runtime.server import ROLES

    for role in ROLES:
        assert f"`{role}`" in README, role
    assert "troupe agents add NAME" in README
    assert 'eval "$(troupe creds agent textstats-1)"' in README
    assert ".troupe/secrets/" in README
    for var in ("URL", "USER", "PASSWORD", "TOKEN", "CREDS"):
        assert f"TROUPE_NATS_{var}" in README
    for flag in ("--user", "--password", "--token", "--creds"):
        assert flag in README


def test_readme_links_the_actor_guide_and_the_example_actor() -> None:
    """The sixth-actor guide and example the README links exist."""
    for target in ("docs/guides/writing-an-actor.md", "examples/actors/notifier.py"):
        assert f"]({target})" in README
        assert (REPO / target).is_file()
