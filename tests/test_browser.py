"""The panel in a real browser: Debian's Chromium driven by Playwright against `nexus up`.

In Indonesian (the default) and in English: login → upload a PDF → the job finishes → search
finds it and the PDF downloads, with a screenshot of every page in test-artifacts/ (Chromium
from `apt-get install chromium`; Playwright never downloads one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO
from tests.support import pdfs
from tests.support.net import free_port
from ui.i18n import t

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "kunci-rahasia-123"

pytestmark = pytest.mark.slow


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not come up")


# what the Jobs page says once the upload is ingested (markdown bold removed by the browser)
JOB_DONE = {"id": "selesai, 1 berhasil", "en": "completed, 1 ingested"}


@pytest.fixture
def running_nexus(lang, bedrock, monkeypatch, tmp_path):
    ui_port = free_port()
    monkeypatch.setenv("UI_PORT", str(ui_port))
    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
    monkeypatch.setenv("API_PORT", str(free_port()))  # `nexus up` starts the HTTP API too
    monkeypatch.setenv("WATCH_STABLE_SECONDS", "0.5")
    nexus = [sys.executable, "-m", "engine.cli.main"]
    subprocess.run(
        [*nexus, "admin", "set-password", "--stdin"],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        timeout=60,
    )
    log = (tmp_path / "nexus-up.log").open("w")
    up = subprocess.Popen([*nexus, "up"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health")
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        log.close()


def file_results() -> list[tuple[str, str, str]]:
    """Every file result the engine recorded: what to look at when a job did not complete."""
    from engine.jobs.sqlite import SqliteJobTracker
    from engine.settings import Settings

    tracker = SqliteJobTracker(Settings().db_path)
    return [
        (f.path.rsplit("/", 1)[-1], str(f.status), f.reason)
        for job in tracker.list_jobs(20)
        for f in tracker.job_files(job.job_id)
    ]


def test_login_upload_job_search_in_chromium(running_nexus, lang, tmp_path):
    assert os.path.exists(CHROMIUM), "install Debian's chromium: apt-get install -y chromium"
    from playwright.sync_api import expect, sync_playwright

    def say(key: str, **fields) -> str:
        return t(key, lang=lang, **fields)

    ARTIFACTS.mkdir(exist_ok=True)
    lesson = pdfs.text_pdf(
        tmp_path / "bab1.pdf", ["Topologi bintang memakai switch sebagai pusat jaringan."]
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(30_000)

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"panel-{lang}-{name}.png"), full_page=True)

        def go(key: str) -> None:
            page.get_by_role("link", name=say(key)).click()
            expect(page.get_by_role("heading", name=say(key))).to_be_visible()

        page.goto(running_nexus)
        page.get_by_label(say("login.password")).fill(PASSWORD)
        page.get_by_role("button", name=say("login.submit")).click()
        expect(page.get_by_role("heading", name=say("nav.overview"))).to_be_visible()
        expect(page.get_by_text(say("overview.watching", folder="").strip())).to_be_visible()
        for key in ("overview.library", "overview.attention", "overview.activity"):
            expect(page.get_by_role("heading", name=say(key))).to_be_visible()
        for key in ("nav.jobs", "nav.costs", "nav.packages", "nav.upload", "nav.search"):
            expect(page.get_by_role("link", name=say(key))).to_be_visible()
        shot("1-overview")

        go("nav.upload")
        page.get_by_label(say("upload.new_grade")).fill("kelas_10")
        page.get_by_label(say("upload.new_subject")).fill("informatika")
        page.locator("input[type=file]").set_input_files(str(lesson))
        page.get_by_role("button", name=say("upload.add")).click()
        expect(page.get_by_text("kelas_10/informatika/bab1.pdf")).to_be_visible()
        shot("2-upload")

        deadline = time.monotonic() + 90
        while True:
            go("nav.jobs")
            if page.get_by_text(JOB_DONE[lang]).count() or time.monotonic() > deadline:
                break
            time.sleep(1)
        shot("3-jobs")
        assert page.get_by_text(JOB_DONE[lang]).count(), file_results()

        go("nav.search")
        page.get_by_label(say("search.question")).fill("topologi bintang switch")
        page.get_by_role("button", name=say("search.submit")).click()
        expect(page.get_by_text("kelas_10/informatika/bab1.pdf").first).to_be_visible()
        expect(page.get_by_text(say("search.page", page=1)).first).to_be_visible()
        shot("4-search")
        with page.expect_download() as download:
            page.get_by_role("button", name=say("search.download", page=1)).first.click()
        assert download.value.suggested_filename == "bab1.pdf"
        assert open(download.value.path(), "rb").read() == lesson.read_bytes()

        go("nav.overview")
        expect(
            page.get_by_text(say("overview.library_total", documents="1", pages="1"))
        ).to_be_visible()
        shot("5-overview-after")
        for key in ("nav.costs", "nav.telemetry"):
            go(key)
            shot(f"6-{key.removeprefix('nav.')}")
        browser.close()
