"""The panel against someone who has not logged in: login throttling, self-refreshing
fragments after logout, and hostile uploads."""

from __future__ import annotations

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.auth import LoginThrottle, hash_password, set_password
from engine.cli.main import main as nexus
from engine.inbox.upload import UploadRefused, save_upload
from engine.jobs.base import JobRecord
from engine.settings import Settings
from tests.conftest import REPO

APP = str(REPO / "ui" / "app.py")
PASSWORD = "kunci-rahasia-123"


@pytest.fixture(autouse=True)
def fresh_panel(env_setup, bedrock, monkeypatch):
    monkeypatch.setenv("UI_LANGUAGE", "en")  # messages checked in English; test_ui checks both
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def texts(at: AppTest) -> str:
    kinds = ("title", "markdown", "info", "warning", "error", "success", "caption")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def log_in(at: AppTest, password: str) -> AppTest:
    at.text_input[0].input(password)
    return at.button[0].click().run()


# --- 1. login throttling ---------------------------------------------------------------------


def test_after_many_wrong_passwords_even_the_right_one_waits(settings, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("engine.auth.throttle.wall_clock", clock)
    set_password(settings, PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60).run()
    for attempt in range(8):
        log_in(at, f"tebakan-salah-{attempt}")
    assert "Too many attempts, try again in" in texts(at)
    log_in(at, PASSWORD)
    assert "Too many attempts, try again in" in texts(at) and "Overview" not in texts(at)

    # a new browser session (and a restarted panel) does not reset the count
    st.cache_resource.clear()
    fresh = AppTest.from_file(APP, default_timeout=60).run()
    log_in(fresh, PASSWORD)
    assert "Too many attempts" in texts(fresh) and "Overview" not in texts(fresh)

    clock.now += 15 * 60 + 1  # the longest lockout is 15 minutes
    log_in(fresh, PASSWORD)
    assert [t.value for t in fresh.title] == ["Overview"]


def test_forty_tries_in_two_seconds_get_only_a_handful_checked(tmp_path, monkeypatch):
    import engine.auth.throttle

    checked = []
    real_verify = engine.auth.throttle.verify_password
    monkeypatch.setattr(
        engine.auth.throttle, "verify_password", lambda p, s: checked.append(p) or real_verify(p, s)
    )
    clock = Clock()
    throttle = LoginThrottle(tmp_path / "attempts.db", free_attempts=5, clock=clock)
    stored = hash_password(PASSWORD)
    for attempt in range(40):
        clock.now += 0.05
        throttle.login("ip:203.0.113.9", f"salah-{attempt}", stored)
    assert len(checked) <= 7  # 5 free, then one per lockout (1 s, 2 s)
    assert throttle.login("ip:203.0.113.9", PASSWORD, stored).ok is False
    # another address is not punished for it
    assert throttle.login("ip:198.51.100.4", PASSWORD, stored).ok is True


def test_delays_grow_then_cap_and_old_failures_are_forgotten(tmp_path):
    clock = Clock()
    throttle = LoginThrottle(
        tmp_path / "attempts.db", free_attempts=3, max_delay_s=900, forget_after_s=3600, clock=clock
    )
    stored = hash_password(PASSWORD)
    waits = []
    for _ in range(20):
        clock.now += throttle.wait_s("local")  # the patient attacker waits out every lockout
        waits.append(throttle.login("local", "salah-lagi-123", stored).wait_s)
    assert waits[:2] == [0, 0] and waits[2:6] == [1, 2, 4, 8]
    assert max(waits) == 900 and waits[-1] == 900  # capped: never locked out for longer
    clock.now += 900
    assert throttle.login("local", PASSWORD, stored).ok  # the admin gets back in
    assert throttle.wait_s("local") == 0

    for _ in range(6):
        throttle.login("local", "salah-lagi-123", stored)
    clock.now += 3601
    assert throttle.wait_s("local") == 0
    assert throttle.login("local", "salah-lagi-123", stored).wait_s == 0  # counting from zero


def test_rotating_forwarded_addresses_share_one_bucket_unless_a_proxy_is_trusted():
    from engine.auth import throttle_client

    # uvicorn reports the X-Forwarded-For value as the client when the peer is loopback
    buckets = {
        throttle_client(f"203.0.113.{n}", {"x-forwarded-for": f"203.0.113.{n}"}, "")
        for n in range(20)
    }
    assert buckets == {"forwarded"}
    assert throttle_client(None, {"forwarded": "for=198.51.100.7"}, "") == "forwarded"
    # behind a trusted proxy, the address the server resolved from its header is the client
    trusted = "127.0.0.1"
    assert throttle_client("203.0.113.5", {"x-forwarded-for": "203.0.113.5"}, trusted) == (
        "ip:203.0.113.5"
    )
    # an IPv6 subscriber holds a /64: rotating inside it stays one client
    assert {throttle_client(f"2001:db8:0:1::{n:x}", {}, "") for n in range(50)} == {
        "ip:2001:db8:0:1::/64"
    }
    assert throttle_client("::ffff:198.51.100.4", {}, "") == "ip:198.51.100.4"


def test_the_panel_process_trusts_forwarded_headers_only_from_named_proxies(monkeypatch):
    from engine.cli.ingest_cmds import panel_env

    monkeypatch.delenv("UI_TRUSTED_PROXIES", raising=False)
    untrusted = panel_env(Settings())["FORWARDED_ALLOW_IPS"]
    assert "127.0.0.1" not in untrusted and "*" not in untrusted
    monkeypatch.setenv("UI_TRUSTED_PROXIES", "10.0.0.7, 192.168.1.0/24")
    assert panel_env(Settings())["FORWARDED_ALLOW_IPS"] == "10.0.0.7,192.168.1.0/24"
    monkeypatch.setenv("UI_TRUSTED_PROXIES", "*")
    with pytest.raises(ValueError, match="not an IP address"):
        Settings()


def test_the_whole_installation_has_a_ceiling_on_failed_logins_per_minute(tmp_path):
    clock = Clock()
    throttle = LoginThrottle(tmp_path / "attempts.db", max_failures_per_min=10, clock=clock)
    stored = hash_password(PASSWORD)
    # an attacker with a fresh address for every try
    results = [throttle.login(f"ip:203.0.113.{n}", f"salah-{n}", stored) for n in range(14)]
    assert all(not r.ok for r in results)
    assert [r.wait_s > 0 for r in results[:10]] == [False] * 10
    assert all(r.wait_s > 0 for r in results[10:])  # paused until the minute ends
    assert throttle.login("ip:198.51.100.4", PASSWORD, stored).ok is False  # nobody gets in
    # ... from outside: the admin on the machine itself (or through an SSH tunnel) always can
    assert throttle.login("local", PASSWORD, stored).ok is True
    clock.now += 61
    assert throttle.login("ip:198.51.100.4", PASSWORD, stored).ok is True
    # a right password gives its try back: a busy admin is not counted against the ceiling
    for _ in range(20):
        assert throttle.login("local", PASSWORD, stored).ok


def test_at_most_two_password_checks_run_at_once(tmp_path, monkeypatch):
    import threading

    import engine.auth.throttle

    running, peak, lock = [0], [0], threading.Lock()
    real_scrypt = engine.auth.password._scrypt

    def counted_scrypt(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            return real_scrypt(*args)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(engine.auth.password, "_scrypt", counted_scrypt)
    stored = hash_password(PASSWORD)
    throttle = LoginThrottle(tmp_path / "attempts.db", max_failures_per_min=100)
    threads = [
        threading.Thread(target=throttle.login, args=(f"ip:203.0.113.{n}", "salah", stored))
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert peak[0] == engine.auth.throttle.MAX_CONCURRENT_CHECKS == 2


def test_admin_unlock_lifts_the_lockout(settings, capsys):
    throttle = LoginThrottle(
        settings.data_dir / "login_attempts.db", free_attempts=1, clock=Clock()
    )  # a clock that stands still: the lockout cannot run out while scrypt runs on a busy CPU
    stored = hash_password(PASSWORD)
    throttle.login("local", "salah-sekali-1", stored)
    assert throttle.wait_s("local") > 0
    assert nexus(["admin", "unlock"]) == 0
    assert throttle.wait_s("local") == 0


# --- 2. self-refreshing fragments check the session --------------------------------------------


def running_jobs_fragment() -> None:
    from ui.jobs import _running

    _running()


@pytest.mark.parametrize(
    ("session", "shows"),
    [
        ({"authenticated": True, "age_s": 0}, True),
        ({"authenticated": False, "age_s": 0}, False),  # logged out
        ({"authenticated": True, "age_s": 31 * 60}, False),  # timed out
        ({}, False),  # never logged in
    ],
)
def test_the_jobs_progress_box_shows_nothing_after_logout_or_timeout(settings, session, shows):
    from engine.app import build_engine

    build_engine(Settings()).tracker.save_job(
        JobRecord(
            job_type="ingest",
            total_files=4,
            processed_files=1,
            current_file="/srv/inbox/kelas_10/bk/catatan-siswa-budi.pdf",
        )
    )
    at = AppTest.from_function(running_jobs_fragment, default_timeout=60)
    if session:
        at.session_state["authenticated"] = session["authenticated"]
        at.session_state["last_seen"] = time.time() - session["age_s"]
    at.run()
    assert not at.exception
    progress = at.get("progress")
    assert bool(progress) is shows
    if shows:
        assert "catatan-siswa-budi.pdf" in progress[0].proto.text


def test_every_self_refreshing_fragment_goes_through_the_session_check():
    for page in (REPO / "ui").glob("*.py"):
        if page.name != "common.py":
            assert "st.fragment" not in page.read_text(), f"{page.name}: use session_fragment"


# --- 3. hostile uploads -----------------------------------------------------------------------

BAD_NAMES = {
    "nul": "bab1\x00.pdf",
    "too long": "é" * 130 + ".pdf",  # 264 bytes in UTF-8
    "office lock file": "~$bab1.pdf",
    "partial download": "bab1.pdf.part",
    "dotfile": ".bab1.pdf",
    "slash": "kelas_11/bab1.pdf",
    "backslash": "..\\..\\bab1.pdf",
    "dot dot": "../../bab1.pdf",
    "dot dot inside": "bab1..pdf",
    "not a pdf": "bab1.exe",
    "control character": "bab1\n.pdf",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_hostile_names_are_refused_with_a_message_and_nothing_is_written(inbox, name):
    with pytest.raises(UploadRefused) as refused:
        save_upload(inbox, "kelas_10", "ipa", name, b"%PDF-1.4 x")
    assert str(refused.value) and "\x00" not in str(refused.value)
    assert [p for p in inbox.rglob("*") if p.is_file()] == []


def test_uploads_over_the_size_limit_are_refused(inbox):
    with pytest.raises(UploadRefused, match="UPLOAD_MAX_MB"):
        save_upload(inbox, "kelas_10", "ipa", "besar.pdf", b"%PDF" + b"0" * 2048, max_bytes=1024)
    assert not (inbox / "kelas_10" / "ipa" / "besar.pdf").exists()


def test_a_linked_folder_cannot_carry_an_upload_out_of_the_inbox(inbox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (inbox / "kelas_10").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UploadRefused, match="outside the inbox"):
        save_upload(inbox, "kelas_10", "ipa", "bab1.pdf", b"%PDF-1.4 x")
    assert list(outside.rglob("*")) == []


def test_an_upload_leaves_no_temporary_file_behind(inbox):
    saved = save_upload(inbox, "kelas_10", "ipa", "bab1.pdf", b"%PDF-1.4 x")
    assert sorted(p.name for p in saved.parent.iterdir()) == ["bab1.pdf"]


def upload_page_with_hostile_files() -> None:
    from ui.upload import save_all

    class Fake:
        def __init__(self, name: str, data: bytes):
            self.name, self.data = name, data

        def getvalue(self) -> bytes:
            return self.data

    save_all(
        "kelas_10",
        "ipa",
        [
            Fake("bab1\x00.pdf", b"%PDF-1.4"),
            Fake("x" * 300 + ".pdf", b"%PDF-1.4"),
            Fake("~$bab1.pdf", b"%PDF-1.4"),
            Fake("bab2.pdf", b"%PDF-1.4 baik"),
        ],
    )


def test_the_upload_page_says_why_and_keeps_going(inbox):
    at = AppTest.from_function(upload_page_with_hostile_files, default_timeout=60).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3 and all(e.startswith("Not added:") for e in errors)
    assert "NUL" in errors[0] and "too long" in errors[1] and "temporary" in errors[2]
    assert [s.value for s in at.success] == ["bab2.pdf → kelas_10/ipa/bab2.pdf"]


def test_nexus_ui_caps_uploads_in_streamlit_itself(monkeypatch):
    from engine.cli.ingest_cmds import panel_command

    monkeypatch.setenv("UPLOAD_MAX_MB", "7")
    command = panel_command(Settings())
    assert command[command.index("--server.maxUploadSize") + 1] == "7"


def test_the_upload_widget_has_the_same_limit(settings, monkeypatch):
    monkeypatch.setenv("UPLOAD_MAX_MB", "7")
    set_password(settings, PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["authenticated"] = True
    at.session_state["last_seen"] = time.time()
    at.run()
    at.switch_page("upload.py").run()
    [uploader] = at.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 7
