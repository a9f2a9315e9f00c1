"""What every command that talks to NATS shares: options, exit codes, failing fast.

A command runs its work through :func:`run_client`, which connects as a
short-lived client (:meth:`ConnectionConfig.for_client`: at most
:data:`~actors.runtime.config.CLIENT_CONNECT_TIMEOUT` seconds to connect, no
reconnecting) and turns "nobody answers" - no server at the URL, no actor
behind the subject, a connection lost - into :class:`Unreachable`, which
``troupe`` reports on one line and exits :data:`EXIT_UNAVAILABLE`.

The task options several commands take alike (``--param``, ``--templates``)
are added here too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import nats.errors

from actors.cli.creds import DEFAULT_STATE_DIR, PID_FILE, STATE_DIR_ENV, troupe_url
from actors.runtime.bus import Bus
from actors.runtime.config import (
    CA_ENV,
    URL_ENV,
    ConnectionConfig,
    add_connection_arguments,
)
from actors.runtime.credentials import password_path
from actors.runtime.errors import ConnectError, Forbidden, LoginRefused, Unavailable
from actors.runtime.tls import find_ca

__all__ = [
    "CLIENT_EXIT_CODES",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "Unreachable",
    "add_connection_options",
    "add_param_option",
    "add_templates_option",
    "connection_config",
    "run_client",
]

T = TypeVar("T")

EXIT_USAGE = 2
"""Bad arguments, or the id / name given does not exist."""

EXIT_UNAVAILABLE = 69
"""``EX_UNAVAILABLE`` (sysexits.h): NATS or the actor needed did not answer."""

CLIENT_EXIT_CODES = (
    "2 bad arguments or unknown id; "
    "69 NATS or the actor needed did not answer within seconds (no server at the URL, "
    "no troupe running there): point elsewhere with --nats-url or TROUPE_NATS_URL"
)
"""The exit codes every client command shares, for ``--help`` texts."""

_POINT_ELSEWHERE = (
    "start one with 'troupe up' or point elsewhere with --nats-url URL or TROUPE_NATS_URL"
)

_LOG_IN_AS = (
    'log in as a role that may (e.g. eval "$(troupe creds operator)"), or unset the '
    "TROUPE_NATS_* variables to take the command's role from the state directory"
)

_LOG_IN = (
    "log in with --user/--password, --creds or the TROUPE_NATS_* variables "
    '(eval "$(troupe creds client)" beside a local troupe)'
)


class Unreachable(Exception):
    """NATS, or the actor behind a subject, did not answer.

    The message names the URL and says how to point elsewhere; ``troupe``
    prints it on one line and exits :data:`EXIT_UNAVAILABLE`.
    """


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add the connection flags (see :func:`~actors.runtime.config.add_connection_arguments`)."""
    add_connection_arguments(
        parser,
        ca_help=f"CA certificate to verify the server's TLS with (env {CA_ENV}; "
        "default: the state directory's tls/ca.pem when 'troupe up --tls' made one)",
    )


def add_param_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--param``/``-p NAME=VALUE`` (repeatable) as ``args.param``."""
    parser.add_argument(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="template parameter (repeatable)",
    )


def add_templates_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--templates DIR`` (repeatable) as ``args.templates``."""
    parser.add_argument(
        "--templates",
        metavar="DIR",
        action="append",
        default=[],
        help="extra template directory (repeatable; also TROUPE_TEMPLATES)",
    )


def _local_ca() -> str | None:
    """The CA ``troupe up --tls`` made in the state directory, unless ``TROUPE_NATS_CA`` is set."""
    if os.environ.get(CA_ENV):
        return None
    ca = find_ca(Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR))
    return str(ca) if ca else None


_LOGIN_FLAGS = ("user", "token", "creds")
_LOGIN_VARS = ("TROUPE_NATS_USER", "TROUPE_NATS_TOKEN", "TROUPE_NATS_CREDS")


def _local_login(args: argparse.Namespace, role: str) -> dict[str, str]:
    """Log in as ``role`` with the password file of the local state directory.

    Only when no credential is given by a flag or a ``TROUPE_NATS_*`` variable and
    ``troupe up`` made one in ``$TROUPE_STATE_DIR`` (default ``.troupe/``).
    """
    if any(getattr(args, flag, None) for flag in _LOGIN_FLAGS):
        return {}
    if any(os.environ.get(var) for var in _LOGIN_VARS):
        return {}
    path = password_path(_state_dir(args), role)
    return {"user": role, "password_file": str(path)} if path.is_file() else {}


def _state_dir(args: argparse.Namespace) -> Path:
    """``--state-dir``, else ``$TROUPE_STATE_DIR``, else ``.troupe/``."""
    return Path(
        getattr(args, "state_dir", None) or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    )


def _local_url(args: argparse.Namespace) -> str | None:
    """``--nats-url``; else, unless ``TROUPE_NATS_URL`` is set, the local troupe's URL.

    ``troupe up`` writes its URL (every node's, for a loopback cluster) into the
    pid file of its state directory: a troupe on another port is found as it is.
    """
    url: str | None = getattr(args, "nats_url", None)
    if url or os.environ.get(URL_ENV):
        return url
    state_dir = _state_dir(args)
    return troupe_url(state_dir) if (state_dir / PID_FILE).is_file() else None


def connection_config(
    args: argparse.Namespace,
    *,
    name: str = "troupe-cli",
    client: bool = True,
    role: str | None = None,
) -> ConnectionConfig:
    """Build the connection settings from flags over environment variables.

    Args:
        args: parsed arguments carrying the :func:`add_connection_options` flags.
        name: client name shown by the server.
        client: settings for a short-lived client (fail fast, never reconnect);
            ``False`` for an actor, which waits for its server and reconnects.
        role: who to log in as when no credential is given, with the password
            file ``troupe up`` keeps in the state directory: for a client
            ``client`` (the default) or ``operator`` for operator commands
            (breaker control, cache clear); for an actor its role, if any.

    Raises:
        ConfigError: a value is invalid.
    """
    if role is None and client:
        role = "client"
    login = _local_login(args, role) if role else {}
    config = ConnectionConfig.from_env(
        url=_local_url(args),
        user=login.get("user") or getattr(args, "user", None),
        password_file=login.get("password_file") or getattr(args, "password_file", None),
        password=getattr(args, "password", None),
        token=getattr(args, "token", None),
        creds=getattr(args, "creds", None),
        ca=getattr(args, "ca", None) or _local_ca(),
        name=name,
    )
    return config.for_client() if client else config


def run_client(
    args: argparse.Namespace,
    work: Callable[[Bus], Awaitable[T]],
    *,
    name: str = "troupe-cli",
    role: str = "client",
) -> T:
    """Connect as a client, run ``work`` on the bus, close it, and return what it returned.

    ``role`` is who to log in as when no credential is given (see :func:`connection_config`).

    Raises:
        Unreachable: NATS did not answer at the URL, no actor answered a request
            (or no stream captured a publish), or the connection was lost.
        ConfigError: a connection option is invalid.
    """
    config = connection_config(args, name=name, role=role)

    async def main() -> T:
        try:
            bus = await Bus.connect(config)
        except LoginRefused as exc:
            raise Unreachable(f"{exc}; {_LOG_IN}") from None
        except ConnectError as exc:
            raise Unreachable(f"{exc}; {_POINT_ELSEWHERE}") from None
        try:
            return await work(bus)
        except Forbidden as exc:
            raise Unreachable(f"{exc.message} (NATS at {config.url}); {_LOG_IN_AS}") from None
        except Unavailable as exc:
            raise Unreachable(
                f"{exc.message} (NATS at {config.url}); is a troupe running there? "
                f"{_POINT_ELSEWHERE}"
            ) from None
        except (nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError) as exc:
            raise Unreachable(
                f"lost the connection to NATS at {config.url} ({type(exc).__name__})"
            ) from None
        finally:
            await bus.close()

    return asyncio.run(main())
