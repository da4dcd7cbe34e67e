"""The panel in a real browser: Debian's Chromium driven by Playwright against `nexus up`.

login → upload a PDF → the job finishes → search finds it, with a screenshot of every page in
test-artifacts/ (Chromium from `apt-get install chromium`; Playwright never downloads one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests import pdfs
from tests.conftest import REPO
from tests.net import free_port

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


@pytest.fixture
def running_nexus(bedrock, monkeypatch, tmp_path):
    ui_port = free_port()
    monkeypatch.setenv("UI_PORT", str(ui_port))
    monkeypatch.setenv("CHROMA_PORT", str(free_port()))
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


def test_login_upload_job_search_in_chromium(running_nexus, tmp_path):
    assert os.path.exists(CHROMIUM), "install Debian's chromium: apt-get install -y chromium"
    from playwright.sync_api import expect, sync_playwright

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
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)

        def shot(name: str) -> None:
            page.screenshot(path=str(ARTIFACTS / f"panel-{name}.png"), full_page=True)

        def go(title: str) -> None:
            page.get_by_role("link", name=title).click()
            expect(page.get_by_role("heading", name=title)).to_be_visible()

        page.goto(running_nexus)
        page.get_by_label("Admin password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.get_by_text("Engine running")).to_be_visible()
        shot("1-overview")

        go("Upload")
        page.get_by_label("New grade folder").fill("kelas_10")
        page.get_by_label("New subject folder").fill("informatika")
        page.locator("input[type=file]").set_input_files(str(lesson))
        page.get_by_role("button", name="Add to inbox").click()
        expect(page.get_by_text("kelas_10/informatika/bab1.pdf")).to_be_visible()
        shot("2-upload")

        deadline = time.monotonic() + 90
        while True:
            go("Jobs")
            if page.get_by_text("completed, 1 ingested").count() or time.monotonic() > deadline:
                break
            time.sleep(1)
        expect(page.get_by_text("completed, 1 ingested")).to_be_visible()
        shot("3-jobs")

        go("Search")
        page.get_by_label("Question").fill("topologi bintang switch")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("kelas_10/informatika/bab1.pdf").first).to_be_visible()
        shot("4-search")

        for title in ("Costs", "Telemetry"):
            go(title)
            shot(f"5-{title.lower()}")
        browser.close()
