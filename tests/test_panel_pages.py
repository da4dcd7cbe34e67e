"""Every page of the panel in Chromium, in both languages, on a wide screen and on a phone: the
Indonesian pages hold none of Streamlit's or the engine's English words, and no status value is
cut off. Screenshots of every page at both widths go to test-artifacts/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from engine.auth import set_password
from engine.settings import Settings
from tests.support import pdfs
from tests.support.net import free_port
from tests.test_browser import ARTIFACTS, CHROMIUM, PASSWORD, wait_http
from ui.i18n import t

pytestmark = pytest.mark.slow

# English that Streamlit writes by itself, and sentences the engine records in English: none
# may show on an Indonesian page.
ENGLISH = [
    "Choose options",
    "Choose an option",
    "Upload",
    "per file",
    "Browse files",
    "Drag and drop",
    "unchanged since last ingest",
    "same content as",
    "already ingested",
    "password-protected",
    "local queue only",
    "not configured",
    "not running",
    "server up",
    "embedded",
]
WIDTHS = {"wide": 1400, "phone": 390}

# Every element inside a metric's value whose text is wider than its box (cut off).
TRUNCATED_METRICS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
    .filter(m => [m, ...m.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
    .map(m => m.innerText)"""


@pytest.fixture
def running_panel(lang, bedrock, monkeypatch, tmp_path):
    """`nexus up` over an inbox whose start-up job ingests one lesson, skips its copy and
    refuses an encrypted PDF, so the pages show reasons of each kind."""
    ui_port = free_port()
    for name, value in {
        "UI_PORT": str(ui_port),
        "CHROMA_PORT": str(free_port()),
        "API_PORT": str(free_port()),
        "WATCH_STABLE_SECONDS": "0.3",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    set_password(settings, PASSWORD)
    folder = settings.inbox_dir / "kelas_10" / "informatika"
    lesson = pdfs.text_pdf(folder / "bab1.pdf", ["Topologi bintang memakai switch."])
    shutil.copy(lesson, folder / "bab1-salinan.pdf")
    pdfs.encrypted_pdf(folder / "terkunci.pdf")
    log = (tmp_path / "nexus-up.log").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "up"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health")
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        log.close()


def test_every_page_speaks_the_panels_language_and_fits_a_phone(running_panel, lang):
    assert os.path.exists(CHROMIUM), "install Debian's chromium: apt-get install -y chromium"
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": WIDTHS["wide"], "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(running_panel)
        page.get_by_label(t("login.password", lang=lang)).fill(PASSWORD)
        page.get_by_role("button", name=t("login.submit", lang=lang)).click()
        overview = t("nav.overview", lang=lang)
        expect(page.get_by_role("heading", name=overview)).to_be_visible()

        # the start-up job has finished: its three files are on the Jobs page
        deadline = time.monotonic() + 120
        jobs = t("nav.jobs", lang=lang)
        while time.monotonic() < deadline:
            page.get_by_role("link", name=jobs).click()
            expect(page.get_by_role("heading", name=jobs)).to_be_visible()
            page.wait_for_timeout(1500)
            if page.get_by_text("terkunci.pdf").count():
                break
        skipped = t("reason.duplicate", lang=lang, path="").split("{")[0][:12]
        expect(page.get_by_text(skipped, exact=False).first).to_be_attached()

        links = page.locator('[data-testid="stSidebarNav"] a')
        names = [links.nth(n).inner_text() for n in range(links.count())]
        assert len(names) >= 7, names
        problems = []
        for name in names:
            page.set_viewport_size({"width": WIDTHS["wide"], "height": 1000})
            page.get_by_role("link", name=name).click()
            expect(page.get_by_role("heading", name=name).first).to_be_visible()
            for width_name, width in WIDTHS.items():  # the same page, wide and on a phone
                page.set_viewport_size({"width": width, "height": 1000})
                page.wait_for_timeout(2500)  # fragments, charts and the layout settle
                slug = name.lower().replace(" ", "-")
                page.screenshot(
                    path=str(ARTIFACTS / f"page-{lang}-{slug}-{width_name}.png"), full_page=True
                )
                text = page.get_by_test_id("stMain").inner_text()
                if lang == "id":
                    problems += [f"{name}: {w!r}" for w in ENGLISH if w in text]
                cut = page.evaluate(TRUNCATED_METRICS)
                problems += [f"{name} at {width} px: {c!r} cut off" for c in cut]
        browser.close()
    assert not problems, problems
