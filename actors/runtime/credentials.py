"""Role passwords at rest: one 0600 file per role, bcrypt hashes for the server.

Layout in the state directory (0700)::

    secrets/                 0700
      <role>.password        0600  the role's password, read by that role's process only
      passwords.conf         0600  NATS variables TROUPE_<ROLE>_PASSWORD: "<bcrypt hash>"
      hashes                 0600  the last hash of each login, reused while it matches

No password travels in an environment variable or on a command line: the
server reads hashes from ``passwords.conf`` (its configuration includes the
file), and each actor or command is told the *path* of its own password file
(``TROUPE_NATS_PASSWORD_FILE`` or ``--password-file``). A ``secrets.env`` of an
older troupe is migrated on first use and removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import bcrypt

from actors.runtime.errors import ConfigError

__all__ = [
    "BCRYPT_COST",
    "LEGACY_SECRETS_FILE",
    "PASSWORDS_CONF",
    "PASSWORD_FILE_ENV",
    "SECRETS_DIR",
    "ensure_passwords",
    "hash_password",
    "login_env",
    "password_path",
    "private_umask",
    "read_password_file",
    "read_passwords",
    "secure_state_dir",
    "stable_hashes",
    "write_password_hashes",
]

SECRETS_DIR = "secrets"
"""Directory in the state directory holding the role password files (mode 0700)."""

PASSWORDS_CONF = "passwords.conf"
"""File in :data:`SECRETS_DIR` defining one bcrypt-hash variable per role for the server."""

LEGACY_SECRETS_FILE = "secrets.env"
"""Plain ``TROUPE_<ROLE>_PASSWORD=...`` lines of older state directories (migrated, removed)."""

PASSWORD_FILE_ENV = "TROUPE_NATS_PASSWORD_FILE"  # noqa: S105 - a variable name, no secret
"""Variable naming the file a process reads its NATS password from."""

BCRYPT_COST = 8
"""Work factor of the server-side hashes.

The passwords are 192 random bits, so the hash does not slow down guessing
(there is nothing to guess); it keeps a leaked server configuration from being
a usable login. A low factor keeps each connection's check cheap for the server.
"""


def _var(role: str) -> str:
    return f"TROUPE_{role.upper()}_PASSWORD"


def password_path(state_dir: Path, role: str) -> Path:
    """Return the file holding ``role``'s password in ``state_dir``."""
    return Path(state_dir) / SECRETS_DIR / f"{role}.password"


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Create files and directories readable by their owner only while in the block."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def secure_state_dir(state_dir: Path) -> Path:
    """Create ``state_dir`` and its ``secrets/`` directory with mode 0700; return it.

    An existing directory is narrowed to 0700 (an older troupe made it 0755).
    """
    state_dir = Path(state_dir)
    for directory in (state_dir, state_dir / SECRETS_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        if stat.S_IMODE(directory.stat().st_mode) != 0o700:
            directory.chmod(0o700)
    return state_dir


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # an existing temporary file keeps its old mode through O_CREAT
    tmp.replace(path)


def read_password_file(path: str | Path) -> str:
    """Return the password stored in ``path`` (surrounding whitespace stripped).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    try:
        password = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError("password_file", f"cannot read {path}: {exc.strerror}") from None
    if not password:
        raise ConfigError("password_file", f"{path} is empty")
    return password


def read_passwords(state_dir: Path, roles: Iterable[str]) -> dict[str, str]:
    """Return the passwords of ``roles`` stored in ``state_dir`` (missing ones left out)."""
    found: dict[str, str] = {}
    for role in roles:
        path = password_path(state_dir, role)
        with contextlib.suppress(FileNotFoundError, ConfigError):
            found[role] = read_password_file(path)
    return found


def _legacy_passwords(state_dir: Path) -> dict[str, str]:
    path = Path(state_dir) / LEGACY_SECRETS_FILE
    values: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("TROUPE_") and key.endswith("_PASSWORD"):
                values[key.strip()] = value.strip()
    return values


def ensure_passwords(state_dir: Path, roles: Iterable[str]) -> dict[str, str]:
    """Return every role's password, generating (or migrating) missing ones.

    Missing passwords are taken from an old ``secrets.env`` if there is one
    (which is then removed), else generated; each is written to its own 0600 file.

    Returns:
        role name → password.
    """
    secure_state_dir(state_dir)
    roles = list(roles)
    passwords = read_passwords(state_dir, roles)
    legacy = _legacy_passwords(state_dir)
    for role in roles:
        if role in passwords:
            continue
        # nats-server reads ``$VAR`` values as config values: a leading letter keeps
        # a generated password from being parsed as a number.
        old = legacy.get(_var(role), "")
        password = old if old[:1].isalpha() else "p" + secrets.token_urlsafe(24)
        _write_private(password_path(state_dir, role), password + "\n")
        passwords[role] = password
    with contextlib.suppress(FileNotFoundError):
        (Path(state_dir) / LEGACY_SECRETS_FILE).unlink()
    return passwords


def hash_password(password: str, cost: int = BCRYPT_COST) -> str:
    """Return the bcrypt hash of ``password`` in the form nats-server accepts.

    The ``$2a$`` form: nats-server reads a ``$2a$...`` value as a hash even
    unquoted or from an environment variable, where ``$2b$`` would be taken
    for a variable reference.
    """
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost, prefix=b"2a")).decode()


HASHES_FILE = "hashes"
"""File in :data:`SECRETS_DIR` keeping each login's current hash, one ``user hash`` a line."""


def stable_hashes(state_dir: Path, passwords: Mapping[str, str]) -> dict[str, str]:
    """Return a bcrypt hash of each password, the same one as last time while it still matches.

    A fresh salt on every write would change the server configuration each
    time it is rendered, so every ``troupe agents add`` (even of an agent
    already issued) would make the server reload all of its users. Keeping
    the hashes stable makes an unchanged configuration byte-identical.

    Args:
        state_dir: the state directory.
        passwords: user (or role) name → password.

    Returns:
        user → hash, for every user of ``passwords``.
    """
    path = Path(state_dir) / SECRETS_DIR / HASHES_FILE
    try:
        known = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    except FileNotFoundError:
        known = {}
    hashes: dict[str, str] = {}
    for user, password in passwords.items():
        old = known.get(user, "")
        if old and bcrypt.checkpw(password.encode(), old.encode()):
            hashes[user] = old
        else:
            hashes[user] = hash_password(password)
    merged = {**known, **hashes}
    if merged != known:
        _write_private(path, "".join(f"{u} {h}\n" for u, h in sorted(merged.items())))
    return hashes


def write_password_hashes(
    state_dir: Path, passwords: Mapping[str, str], *, anonymous: str | None = None
) -> Path:
    """Write :data:`PASSWORDS_CONF`: one ``TROUPE_<ROLE>_PASSWORD: "<hash>"`` line per role.

    A server configuration that includes this file and says
    ``password: $TROUPE_<ROLE>_PASSWORD`` checks logins against the hashes.

    Args:
        state_dir: the state directory.
        passwords: role name → password.
        anonymous: the configuration's ``no_auth_user``, if any. Its password
            is written as is: nats-server matches a connection without
            credentials against a plain password only, and a login everyone
            gets by presenting nothing protects no secret.

    Returns:
        The path of the file.
    """
    secure_state_dir(state_dir)
    hashes = stable_hashes(state_dir, {r: pw for r, pw in passwords.items() if r != anonymous})

    def value(role: str, password: str) -> str:
        return password if role == anonymous else hashes[role]

    lines = [
        "# Generated by troupe: bcrypt hashes of the role passwords. Do not edit.\n",
        *(f'{_var(role)}: "{value(role, pw)}"\n' for role, pw in sorted(passwords.items())),
    ]
    path = Path(state_dir) / SECRETS_DIR / PASSWORDS_CONF
    _write_private(path, "".join(lines))
    return path


def login_env(state_dir: Path, role: str) -> dict[str, str]:
    """Return the variables that log a process in as ``role``: the user and the password *file*."""
    return {"TROUPE_NATS_USER": role, PASSWORD_FILE_ENV: str(password_path(state_dir, role))}
