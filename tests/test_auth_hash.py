"""Admin password hashes: OWASP's scrypt cost, parameters stored with the hash, old hashes
upgraded at the next login, and a malformed hash refused with a message, never a crash."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.auth import (
    MalformedHash,
    hash_password,
    login_throttle,
    parse_hash,
    set_password,
    stored_hash,
    upgrade_hash,
    verify_password,
)
from tests.conftest import REPO

APP = str(REPO / "ui" / "app.py")
PASSWORD = "kunci-rahasia-123"


@pytest.fixture(autouse=True)
def fresh_panel(env_setup, bedrock):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


def old_format_hash(password: str, n: int = 2**14) -> str:
    """What the first version of `hash_password` stored: `scrypt$N$r$p$salt$hash`."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_stored(settings, value: str) -> None:
    path = settings.data_dir / "keys" / "admin_password"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)


def texts(at: AppTest) -> str:
    kinds = ("title", "markdown", "info", "warning", "error", "success", "caption")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def log_in(password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input(password)
    return at.button[0].click().run()


def test_a_new_hash_has_owasp_cost_and_says_so():
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$n=131072,r=8,p=1$")
    parsed = parse_hash(stored)
    assert parsed.n >= 2**17 and parsed.r >= 8 and parsed.p >= 1 and not parsed.outdated
    assert verify_password(PASSWORD, stored) and not verify_password("salah-" + PASSWORD, stored)


def test_an_old_hash_still_verifies_with_its_own_parameters():
    stored = old_format_hash(PASSWORD)
    assert parse_hash(stored).outdated
    assert verify_password(PASSWORD, stored) and not verify_password("salah-sekali-1", stored)


def test_an_old_hash_is_upgraded_after_the_next_login(settings):
    write_stored(settings, old_format_hash(PASSWORD))
    at = log_in(PASSWORD)
    assert not at.exception
    assert [t.value for t in at.title] == ["Ikhtisar"]  # logged in, in Indonesian
    upgraded = stored_hash(settings)
    assert upgraded.startswith("scrypt$n=131072,r=8,p=1$")
    assert parse_hash(upgraded).n >= 2**17
    assert verify_password(PASSWORD, upgraded)
    assert (settings.data_dir / "keys" / "admin_password").stat().st_mode & 0o077 == 0
    st.cache_resource.clear()
    assert [t.value for t in log_in(PASSWORD).title] == ["Ikhtisar"]  # still the same password


def test_a_wrong_password_never_upgrades_the_hash(settings):
    old = old_format_hash(PASSWORD)
    write_stored(settings, old)
    at = log_in("salah-sekali-123")
    assert "Kata sandi salah" in texts(at)
    assert stored_hash(settings) == old


def test_a_hash_from_the_environment_is_left_as_it_is(settings, monkeypatch):
    old = old_format_hash(PASSWORD)
    monkeypatch.setenv("NEXUS_ADMIN_PASSWORD_HASH", old)
    from engine.settings import Settings

    env_settings = Settings()
    assert upgrade_hash(env_settings, PASSWORD, old) is False
    assert not (settings.data_dir / "keys" / "admin_password").exists()
    assert login_throttle(env_settings).login("local", PASSWORD, old).ok


MALFORMED = {
    "garbage": "this is not a hash",
    "plain text password": PASSWORD,
    "wrong scheme": "bcrypt$2b$12$abcdefghijklmnopqrstuv",
    "bad base64": "scrypt$n=131072,r=8,p=1$%%%$%%%",
    "missing parameter": "scrypt$n=131072,r=8$c2FsdHNhbHRzYWx0$" + "A" * 44,
    "n not a power of two": "scrypt$n=100000,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 44,
    "memory bomb": "scrypt$n=1099511627776,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 44,
    "empty": "",
}


@pytest.mark.parametrize("stored", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_hash_is_refused_by_the_parser(stored):
    with pytest.raises(MalformedHash):
        parse_hash(stored)


@pytest.mark.parametrize("stored", ["this is not a hash", MALFORMED["memory bomb"]])
def test_a_malformed_hash_refuses_login_with_a_message_not_a_crash(settings, stored):
    write_stored(settings, stored)
    at = log_in(PASSWORD)
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Login ditolak" in errors and "nexus admin set-password" in errors
    assert [t.value for t in at.title] == ["OpenClass Nexus"]  # not logged in
    assert stored_hash(settings) == stored  # nothing rewritten


def test_a_malformed_hash_is_not_counted_as_a_failed_try(settings):
    throttle = login_throttle(settings)
    for _ in range(10):
        result = throttle.login("local", PASSWORD, "scrypt$broken")
        assert not result.ok and result.malformed and result.wait_s == 0
    set_password(settings, PASSWORD)
    assert throttle.login("local", PASSWORD, stored_hash(settings)).ok


def test_logged_in_sessions_are_not_affected_by_the_upgrade(settings):
    write_stored(settings, old_format_hash(PASSWORD))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["authenticated"] = True
    at.session_state["last_seen"] = time.time()
    at.run()
    assert not at.exception and stored_hash(settings).startswith("scrypt$16384$")
