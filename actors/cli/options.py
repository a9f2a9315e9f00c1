"""Options shared by commands that talk to NATS."""

from __future__ import annotations

import argparse

from actors.runtime.config import ConnectionConfig

__all__ = ["add_connection_options", "connection_config"]


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--nats-url``, ``--user``, ``--password``, ``--token``, ``--creds``."""
    group = parser.add_argument_group("connection (defaults from TROUPE_NATS_* variables)")
    group.add_argument(
        "--nats-url",
        metavar="URL",
        help="NATS server URL(s), comma-separated "
        "(env TROUPE_NATS_URL, default nats://127.0.0.1:4222)",
    )
    group.add_argument("--user", help="NATS user (env TROUPE_NATS_USER)")
    group.add_argument("--password", help="NATS password (env TROUPE_NATS_PASSWORD)")
    group.add_argument("--token", help="NATS token (env TROUPE_NATS_TOKEN)")
    group.add_argument("--creds", metavar="FILE", help="NATS .creds file (env TROUPE_NATS_CREDS)")


def connection_config(args: argparse.Namespace, *, name: str = "troupe-cli") -> ConnectionConfig:
    """Build the connection settings from flags over environment variables."""
    return ConnectionConfig.from_env(
        url=getattr(args, "nats_url", None),
        user=getattr(args, "user", None),
        password=getattr(args, "password", None),
        token=getattr(args, "token", None),
        creds=getattr(args, "creds", None),
        name=name,
        connect_timeout=getattr(args, "connect_timeout", None) or 5.0,
    )
