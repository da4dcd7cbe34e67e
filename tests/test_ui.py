"""The admin panel with Streamlit's AppTest: every page, empty and populated, logged in or not."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.app import build_engine
from engine.auth import set_password
from engine.ingest.upload import save_upload
from engine.settings import Settings
from tests import pdfs
from tests.conftest import REPO

APP = str(REPO / "ui" / "app.py")
PASSWORD = "kunci-rahasia-123"
PAGES = [
    "overview.py",
    "jobs.py",
    "costs.py",
    "packages.py",
    "telemetry.py",
    "upload.py",
    "search.py",
]


@pytest.fixture(autouse=True)
def fresh_panel(env_setup, bedrock):
    st.cache_resource.clear()  # each test has its own data dir
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


def app(logged_in: bool = False) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if logged_in:
        at.session_state["authenticated"] = True
        at.session_state["last_seen"] = time.time()
    return at.run()


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("title", "markdown", "info", "warning", "error", "success", "caption")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def test_without_a_password_nobody_gets_in_and_the_admin_is_told_how(settings):
    at = app()
    assert not at.exception
    assert "nexus admin set-password" in texts(at)
    assert [t.value for t in at.title] == ["OpenClass Nexus"]  # no page content


def test_login_refuses_a_wrong_password_and_accepts_the_right_one(settings):
    set_password(settings, PASSWORD)
    at = app()
    at.text_input[0].input("salah-sekali-123")
    at.button[0].click().run()
    assert "Wrong password" in texts(at) and "Overview" not in texts(at)
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Overview"]


def test_the_session_times_out(settings):
    set_password(settings, PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["authenticated"] = True
    at.session_state["last_seen"] = time.time() - 31 * 60
    at.run()
    assert "timed out" in texts(at) and "Overview" not in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_a_helpful_empty_state(settings, page):
    set_password(settings, PASSWORD)
    at = app(logged_in=True)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert at.title[0].value == page.removesuffix(".py").capitalize()


@pytest.fixture
def populated(settings, inbox):
    set_password(settings, PASSWORD)
    engine = build_engine(Settings())
    subject = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(subject / "bab1.pdf", ["Algoritma adalah urutan langkah logis."])
    pdfs.encrypted_pdf(subject / "kunci.pdf")
    engine.ingestor.run([inbox], inbox)
    for hours_ago in (3, 2):
        engine.telemetry.record_query(
            40, False, when=datetime.now(UTC) - timedelta(hours=hours_ago)
        )
    engine.telemetry.roll_up()
    return engine


def test_jobs_page_shows_files_and_reasons(populated):
    at = app(logged_in=True)
    at.switch_page("jobs.py").run()
    assert not at.exception
    assert "**partial**, 1 ingested, 1 failed" in texts(at)
    files = at.dataframe[1].value
    assert set(files["status"]) == {"ingested", "encrypted"}
    assert "password" in " ".join(files["reason"])
    pdfs.text_pdf(
        populated.settings.inbox_dir / "kelas_11" / "ipa" / "gaya.pdf", ["Gaya dan gerak."]
    )
    populated.ingestor.run([populated.settings.inbox_dir], populated.settings.inbox_dir)
    at = app(logged_in=True)
    at.switch_page("jobs.py").run()
    assert "2 of 2 jobs" in texts(at)
    [grade] = [s for s in at.selectbox if s.label == "Grade"]
    grade.select("kelas_11").run()
    assert "1 of 2 jobs" in texts(at)
    at.switch_page("jobs.py").run()
    rerun = [b for b in at.button if b.label == "Re-run"][0]
    rerun.click().run()
    assert "engine is not running" in texts(at)  # nothing would pick the request up


def test_costs_page_charts_bedrock_spending(populated):
    at = app(logged_in=True)
    at.switch_page("costs.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # per day and per subject
    assert at.metric[1].value != "0"


def test_telemetry_page_shows_privacy_status_and_charts(populated):
    at = app(logged_in=True)
    at.switch_page("telemetry.py").run()
    assert not at.exception
    assert [m.value for m in at.metric][:2] == ["2 h", "passed"]
    assert len(at.get("plotly_chart")) == 3


def test_search_page_finds_the_page(populated):
    at = app(logged_in=True)
    at.switch_page("search.py").run()
    at.text_input[0].input("algoritma langkah")
    at.button[0].click().run()
    assert not at.exception
    assert "kelas_10/informatika/bab1.pdf**, page 1" in texts(at)
    assert "hybrid search" in texts(at)


def test_overview_shows_services_and_engine_state(populated):
    from engine.state import write_state

    write_state(
        populated.settings,
        watching="/srv/inbox",
        mode="polling",
        queue_length=2,
        embedding_strategy="hybrid",
        model="amazon.titan-embed-text-v2:0",
        fallen_back=True,
        fallback_reason="Bedrock unreachable",
        device="cpu",
    )
    at = app(logged_in=True)
    assert not at.exception
    assert "watching /srv/inbox" in texts(at) and "Bedrock unreachable" in texts(at)
    services = at.dataframe[0].value
    assert "bedrock" in set(services["service"])


def test_uploads_never_replace_a_teachers_file(inbox):
    first = save_upload(inbox, "kelas_10", "ipa", "bab1.pdf", b"%PDF-1 versi guru")
    again = save_upload(inbox, "kelas_10", "ipa", "bab1.pdf", b"%PDF-1 versi guru")
    other = save_upload(inbox, "kelas_10", "ipa", "bab1.pdf", b"%PDF-1 versi lain")
    assert first == again and first.read_bytes() == b"%PDF-1 versi guru"
    assert other.name == "bab1 (2).pdf"
    for grade, name in (
        ("..", "x.pdf"),
        ("kelas_10/../..", "x.pdf"),
        ("kelas_10", ".x.pdf"),
        ("kelas_10", "../../y.pdf"),  # refused, not quietly renamed
    ):
        with pytest.raises(ValueError):
            save_upload(inbox, grade, "ipa", name, b"%PDF-1")


def test_packages_page_builds_publishes_and_installs(populated, monkeypatch):
    from engine.vkp.keys import keygen

    keygen(populated.settings.data_dir / "keys")
    at = app(logged_in=True)
    at.switch_page("packages.py").run()
    [build] = [b for b in at.button if b.label == "Build and publish the next version"]
    build.click().run()
    assert not at.exception
    assert "Published informatika_kelas_10_v1.0.0.vkp" in texts(at)
    at.switch_page("packages.py").run()
    built = at.dataframe[0].value
    assert list(built["published"]) == ["1.0.0"]

    # the same server pulls from its own publish folder, as a school would from a USB stick
    import os

    os.environ["VKP_SOURCE"] = str(populated.settings.vkp_dir / "publish")
    try:
        st.cache_resource.clear()
        at = app(logged_in=True)
        at.switch_page("packages.py").run()
        [update] = [b for b in at.button if b.label == "Update"]
        update.click().run()
        assert "'action': 'installed'" in texts(at)
        at.switch_page("packages.py").run()
        installed = at.dataframe[1].value
        assert list(installed["installed"]) == ["1.0.0"] and list(
            installed["catalogue latest"]
        ) == ["1.0.0"]
    finally:
        del os.environ["VKP_SOURCE"]
