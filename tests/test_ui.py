"""The admin panel with Streamlit's AppTest: every page in both languages, empty and populated,
logged in or not."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from engine.app import build_engine
from engine.auth import set_password
from engine.inbox.upload import save_upload
from engine.settings import Settings
from tests.conftest import REPO
from tests.support import pdfs
from tests.support.net import closed_port_url
from ui.i18n import t

APP = str(REPO / "ui" / "app.py")
PASSWORD = "kunci-rahasia-123"
PAGES = {
    "overview.py": "nav.overview",
    "jobs.py": "nav.jobs",
    "costs.py": "nav.costs",
    "packages.py": "nav.packages",
    "telemetry.py": "nav.telemetry",
    "upload.py": "nav.upload",
    "search.py": "nav.search",
    "evaluate.py": "nav.evaluate",
}
NOT_YET_TRANSLATED: set[str] = set()
INDONESIAN_NAV = "Ikhtisar Pekerjaan Biaya Paket Telemetri Unggah Cari Evaluasi".split()


@pytest.fixture(autouse=True)
def fresh_panel(env_setup, bedrock):
    st.cache_resource.clear()  # each test has its own data dir
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture
def english(monkeypatch):
    monkeypatch.setenv("UI_LANGUAGE", "en")
    return "en"


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


def nav_labels(at: AppTest) -> list[str]:
    # AppTest keeps st.navigation's pages here (no public accessor in Streamlit 1.67)
    return [page["page_name"] for page in at._registered_pages.values()]


def table(at: AppTest, key: str, lang: str = "id"):
    """The first dataframe that has the column `t(key)`."""
    column = t(key, lang=lang)
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_without_a_password_nobody_gets_in_and_the_admin_is_told_how(settings):
    at = app()
    assert not at.exception
    assert "nexus admin set-password" in texts(at) and "Kata sandi admin belum diatur" in texts(at)
    assert [t.value for t in at.title] == ["OpenClass Nexus"]  # no page content


def test_login_refuses_a_wrong_password_and_accepts_the_right_one(settings):
    set_password(settings, PASSWORD)
    at = app()
    assert at.text_input[0].label == "Kata sandi admin"
    at.text_input[0].input("salah-sekali-123")
    at.button[0].click().run()
    assert "Kata sandi salah" in texts(at) and "Ikhtisar" not in texts(at)
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Ikhtisar"]
    assert nav_labels(at) == INDONESIAN_NAV
    assert [b.label for b in at.sidebar.button] == ["Keluar"]


def test_the_session_times_out(settings):
    set_password(settings, PASSWORD)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["authenticated"] = True
    at.session_state["last_seen"] = time.time() - 31 * 60
    at.run()
    assert "Sesi Anda telah berakhir" in texts(at) and "Ikhtisar" not in texts(at)


@pytest.mark.parametrize("lang", ["id", "en"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_both_languages_with_a_helpful_empty_state(
    settings, monkeypatch, page, lang
):
    monkeypatch.setenv("UI_LANGUAGE", lang)
    set_password(settings, PASSWORD)
    at = app(logged_in=True)
    at.switch_page(page).run()
    assert not at.exception, at.exception
    titles = {t(PAGES[page], lang=lang)}
    if page in NOT_YET_TRANSLATED:
        titles.add(t(PAGES[page], lang="en"))
    assert at.title[0].value in titles
    expected_nav = [t(key, lang=lang) for key in PAGES.values()]
    assert nav_labels(at) == expected_nav
    if lang == "id":
        assert expected_nav == INDONESIAN_NAV


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


def test_jobs_page_shows_files_where_the_admin_put_them(populated, english):
    at = app(logged_in=True)
    at.switch_page("jobs.py").run()
    assert not at.exception
    assert "**partial**, 1 ingested, 1 failed" in texts(at)
    files = table(at, "col.reason", "en")
    assert set(files["Status"]) == {"ingested", "encrypted"}
    assert set(files["Grade"]) == {"kelas_10"} and set(files["Subject"]) == {"informatika"}
    assert set(files["File"]) == {"bab1.pdf", "kunci.pdf"}  # not /tmp/.../inbox/...
    assert "password" in " ".join(files["Reason"])
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
    [pick] = [s for s in at.selectbox if s.label == "Re-run a failed file"]
    assert pick.options == ["kelas_10/informatika/kunci.pdf"]
    [rerun] = [b for b in at.button if b.label == "Re-run"]
    rerun.click().run()
    assert "engine is not running" in texts(at)  # nothing would pick the request up


def test_jobs_page_in_indonesian(populated):
    at = app(logged_in=True)
    at.switch_page("jobs.py").run()
    assert not at.exception
    assert "**sebagian**, 1 berhasil, 1 gagal" in texts(at)
    files = table(at, "col.reason")
    assert set(files["Status"]) == {"berhasil diproses", "terenkripsi"}
    assert "1 dari 1 pekerjaan" in texts(at)
    history = table(at, "col.job_type")
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}\.\d{2}", history["Waktu"][0])


def test_costs_page_charts_bedrock_spending(populated):
    at = app(logged_in=True)
    at.switch_page("costs.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # per day and per subject
    assert at.metric[1].label == "Token di-embed" and at.metric[1].value != "0"


def test_telemetry_page_shows_privacy_status_and_charts(populated):
    at = app(logged_in=True)
    at.switch_page("telemetry.py").run()
    assert not at.exception
    assert [m.value for m in at.metric][:2] == ["2 jam", "lolos"]
    assert len(at.get("plotly_chart")) == 3


@pytest.fixture
def api_server(monkeypatch):
    """The real HTTP API on a free port, over this test's data dir."""
    from engine.api.local import ApiServer
    from engine.app import build_engine
    from engine.settings import Settings
    from tests.support.net import free_port

    port = free_port()
    monkeypatch.setenv("API_PORT", str(port))
    server = ApiServer(Settings(), lambda: build_engine(Settings()))
    server.start()
    yield port
    server.stop()


def search(at: AppTest, question: str) -> AppTest:
    at.switch_page("search.py").run()
    at.text_input[0].input(question)
    return at.button[0].click().run()


def test_search_finds_the_page_and_offers_the_pdf(populated, english):
    at = search(app(logged_in=True), "algoritma langkah")
    assert not at.exception
    shown = texts(at).replace("\\", "")  # file names are markdown-escaped
    assert "kelas_10/informatika/bab1.pdf · page 1" in shown
    assert "hybrid search" in texts(at)
    [download] = at.get("download_button")
    assert download.proto.label == "Download PDF (see page 1)"
    assert "/v1/documents/" not in texts(at)  # no HTTP API running: no URL of it


def test_search_links_the_pdf_at_its_page_when_the_api_runs(populated, api_server):
    import urllib.request

    from engine.api.documents import document_id

    at = search(app(logged_in=True), "algoritma langkah")
    assert not at.exception
    assert "halaman 1" in texts(at)
    assert [d.proto.label for d in at.get("download_button")] == ["Unduh PDF (lihat halaman 1)"]
    [document] = [d for d in populated.catalog.all() if d.file_name == "bab1.pdf"]
    [button] = at.get("link_button")
    assert button.proto.label == "Buka PDF di halaman 1"
    prefix = f"http://127.0.0.1:{api_server}/v1/documents/{document_id(document)}/pdf?t="
    assert button.proto.url.startswith(prefix) and button.proto.url.endswith("#page=1")
    # the link opens in a plain browser request (no key): the token stands in for it
    with urllib.request.urlopen(button.proto.url.partition("#")[0], timeout=10) as answer:
        assert answer.read() == Path(document.path).read_bytes()


def test_overview_answers_the_first_questions(populated, monkeypatch):
    from engine.runtime.state import write_state

    monkeypatch.setenv("API_PORT", closed_port_url().rsplit(":", 1)[1])

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
    assert "memantau /srv/inbox" in texts(at) and "Bedrock unreachable" in texts(at)
    status = {m.label: m.value for m in at.metric}
    # short values in Streamlit's own colours and icons (no emoji font needed)
    assert status["Mesin"] == ":green[:material/check_circle: Aktif]"
    assert status["API HTTP"] == ":gray[:material/radio_button_unchecked: Mati]"  # no API
    assert status["Chroma"] == ":gray[:material/radio_button_unchecked: Tertanam]"
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["Mesin"] == "berjalan" and helps["Chroma"] == "tertanam"
    library = table(at, "col.documents")
    assert list(library["Kelas"]) == ["kelas_10"] and list(library["Dokumen"]) == [1]
    assert library["Model embedding"][0]
    attention = table(at, "col.todo")
    assert list(attention["Berkas"]) == ["kelas_10/informatika/kunci.pdf"]
    assert list(attention["Status"]) == ["terenkripsi"]
    assert "tanpa kata sandi" in attention["Yang perlu dilakukan"][0]
    assert len(at.get("plotly_chart")) == 2  # documents per subject, files per day
    services = table(at, "col.service")
    assert "bedrock" in set(services["Layanan"])


def test_overview_in_english_with_the_api_running(populated, english, api_server):
    at = app(logged_in=True)
    assert not at.exception
    status = {m.label: m.value for m in at.metric}
    assert status["HTTP API"] == ":green[:material/check_circle: On]"
    assert status["Engine"] == ":red[:material/error: Off]"
    assert "nexus up" in texts(at)


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

    monkeypatch.setenv("UI_LANGUAGE", "en")
    keygen(populated.settings.data_dir / "keys")
    at = app(logged_in=True)
    at.switch_page("packages.py").run()
    [build] = [b for b in at.button if b.label == "Build and publish the next version"]
    build.click().run()
    assert not at.exception
    # the package's file name names grade and subject (its exact form is the VKP module's)
    assert re.search(
        r"Published \S*(kelas_10\S*informatika|informatika\S*kelas_10)\S*1\.0\.0", texts(at)
    )
    at.switch_page("packages.py").run()
    built = at.dataframe[0].value
    assert list(built["published"]) == ["1.0.0"]

    # the same server pulls from its own publish folder, as a school would from a USB stick
    monkeypatch.setenv("VKP_SOURCE", str(populated.settings.vkp_dir / "publish"))
    st.cache_resource.clear()
    at = app(logged_in=True)
    at.switch_page("packages.py").run()
    [update] = [b for b in at.button if b.label == "Update"]
    update.click().run()
    assert "kelas_10__informatika: installed 1.0.0" in texts(at)
    at.switch_page("packages.py").run()
    installed = at.dataframe[1].value
    assert list(installed["installed"]) == ["1.0.0"] and list(installed["catalogue latest"]) == [
        "1.0.0"
    ]


def test_search_asks_the_running_engine_when_there_is_one(populated, api_server):
    """The panel and the API share the engine's warm model: with the engine running, the
    panel's search goes through the engine's local API."""
    from engine.api.local import LOCAL_KEY_NAME
    from engine.auth.api_keys import api_key_store
    from engine.runtime.state import write_state

    write_state(populated.settings, watching="/inbox")  # a fresh heartbeat: the engine runs
    at = search(app(logged_in=True), "algoritma langkah")
    assert not at.exception
    assert "bab1.pdf" in texts(at)
    [local] = [
        k for k in api_key_store(populated.settings.data_dir).list() if k.name == LOCAL_KEY_NAME
    ]
    assert local.last_used_at  # the answer came from the engine, not from a second model


EVAL_QUESTIONS = (
    "question\texpected\tkind\n"
    "algoritma langkah logis\tkelas_10/informatika/bab1.pdf\tkeyword\n"
    "resep nasi goreng\tkelas_10/informatika/lain.pdf\tparaphrase\n"
)


@pytest.mark.parametrize("lang", ["en", "id"])
def test_evaluation_page_scores_pasted_questions_and_lists_misses(populated, monkeypatch, lang):
    monkeypatch.setenv("UI_LANGUAGE", lang)
    at = app(logged_in=True)
    at.switch_page("evaluate.py").run()
    at.text_area[0].input(EVAL_QUESTIONS)
    at.selectbox[0].select("lexical")
    at = at.button[0].click().run()
    assert not at.exception, at.exception
    figures = table(at, "eval.hit1", lang=lang)
    kinds, hits = figures[t("eval.kind", lang=lang)], figures[t("eval.hit1", lang=lang)]
    by_kind = dict(zip(kinds, hits, strict=True))
    assert by_kind["keyword"] == 1.0 and by_kind["paraphrase"] == 0.0
    misses = table(at, "eval.first", lang=lang)
    assert list(misses[t("eval.question", lang=lang)]) == ["resep nasi goreng"]
    assert len(at.get("plotly_chart")) == 1


def test_evaluation_page_says_why_a_file_cannot_be_used(populated, english):
    at = app(logged_in=True)
    at.switch_page("evaluate.py").run()
    at.text_area[0].input("q\tfile\nwhat\tx.pdf\n")
    at = at.button[0].click().run()
    assert not at.exception
    assert "cannot be used" in texts(at) and "`expected`" in texts(at)
