"""Role passwords at rest: per-role 0600 files, bcrypt hashes for the server, no env secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
import pytest

from actors.runtime import ConnectionConfig
from actors.runtime.credentials import (
    PASSWORD_FILE_ENV,
    ensure_passwords,
    login_env,
    password_path,
    read_password_file,
    secure_state_dir,
    write_password_hashes,
)
from actors.runtime.errors import ConfigError

ROLES = ("admin", "client", "agent")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_role_gets_its_own_private_password_file(tmp_path: Path) -> None:
    """One 0600 file per role in a 0700 secrets directory; passwords differ and persist."""
    state = tmp_path / "state"
    first = ensure_passwords(state, ROLES)
    assert ensure_passwords(state, ROLES) == first
    assert len(set(first.values())) == len(ROLES)
    assert _mode(state) == 0o700
    assert _mode(state / "secrets") == 0o700
    for role in ROLES:
        assert _mode(password_path(state, role)) == 0o600
        assert read_password_file(password_path(state, role)) == first[role]


def test_an_open_state_dir_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    """A state directory an older troupe left at 0755 becomes 0700."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    secure_state_dir(state)
    assert _mode(state) == 0o700


def test_an_old_secrets_env_is_migrated_and_removed(tmp_path: Path) -> None:
    """Passwords of an old secrets.env are kept (clients still log in) and the file goes."""
    (tmp_path / "secrets.env").write_text("TROUPE_ADMIN_PASSWORD=pOldAdmin\nOTHER=x\n")
    passwords = ensure_passwords(tmp_path, ROLES)
    assert passwords["admin"] == "pOldAdmin"
    assert not (tmp_path / "secrets.env").exists()


def test_the_server_gets_hashes_only(tmp_path: Path) -> None:
    """passwords.conf holds bcrypt hashes matching the passwords, never the passwords."""
    passwords = ensure_passwords(tmp_path, ROLES)
    text = write_password_hashes(tmp_path, passwords).read_text()
    assert _mode(tmp_path / "secrets" / "passwords.conf") == 0o600
    for role, password in passwords.items():
        assert password not in text
        line = next(ln for ln in text.splitlines() if ln.startswith(f"TROUPE_{role.upper()}_"))
        assert bcrypt.checkpw(password.encode(), line.split('"')[1].encode())


def test_rewriting_the_hashes_leaves_the_file_byte_identical(tmp_path: Path) -> None:
    """A hash is kept while it matches, so an unchanged configuration needs no reload."""
    passwords = ensure_passwords(tmp_path, ROLES)
    first = write_password_hashes(tmp_path, passwords).read_text()
    assert write_password_hashes(tmp_path, passwords).read_text() == first


def test_a_changed_password_gets_a_new_hash(tmp_path: Path) -> None:
    """A kept hash never outlives its password: the new one is hashed afresh."""
    passwords = ensure_passwords(tmp_path, ROLES)
    write_password_hashes(tmp_path, passwords)
    changed = {**passwords, "admin": "pAnotherAdminPassword"}
    text = write_password_hashes(tmp_path, changed).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("TROUPE_ADMIN_"))
    assert bcrypt.checkpw(b"pAnotherAdminPassword", line.split('"')[1].encode())
    assert not bcrypt.checkpw(passwords["admin"].encode(), line.split('"')[1].encode())


def test_the_anonymous_login_is_not_hashed(tmp_path: Path) -> None:
    """The no_auth_user's password stays plain: the server cannot match it otherwise."""
    passwords = ensure_passwords(tmp_path, ROLES)
    text = write_password_hashes(tmp_path, passwords, anonymous="client").read_text()
    assert f'TROUPE_CLIENT_PASSWORD: "{passwords["client"]}"' in text
    assert passwords["admin"] not in text


def test_a_process_is_told_where_its_password_is_not_what_it_is(tmp_path: Path) -> None:
    """login_env names the user and the password file; the password is in no variable."""
    passwords = ensure_passwords(tmp_path, ROLES)
    env = login_env(tmp_path, "agent")
    assert env == {
        "TROUPE_NATS_USER": "agent",
        PASSWORD_FILE_ENV: str(password_path(tmp_path, "agent")),
    }
    assert passwords["agent"] not in "".join(env.values())
    config = ConnectionConfig.from_env(env)
    assert config.user == "agent"
    assert config.password == passwords["agent"]
    assert passwords["agent"] not in repr(config)


def test_a_missing_or_empty_password_file_fails_naming_the_field(tmp_path: Path) -> None:
    """A password file that cannot be read is a ConfigError on password_file."""
    with pytest.raises(ConfigError, match="password_file"):
        ConnectionConfig(user="agent", password_file=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="password_file"):
        ConnectionConfig(user="agent", password_file=str(tmp_path / "empty"))


def test_a_missing_ca_file_fails_naming_the_field(tmp_path: Path) -> None:
    """A CA path that is not a file is a ConfigError on ca."""
    with pytest.raises(ConfigError, match="ca"):
        ConnectionConfig(ca=str(tmp_path / "nope.pem"))
