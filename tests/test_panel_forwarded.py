"""The panel's login throttle in a real browser against `nexus ui`, with a client that sends a
new X-Forwarded-For value on every try (uvicorn believes that header from loopback peers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.auth import set_password
from engine.settings import Settings
from tests.support.net import free_port
from tests.test_browser import CHROMIUM, PASSWORD, wait_http

pytestmark = pytest.mark.slow


def login_messages(url: str, tries: int) -> list[str]:
    """The message the panel shows after each wrong password, each try from a 'new' address."""
    from playwright.sync_api import sync_playwright

    messages = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        for n in range(tries):
            context = browser.new_context(extra_http_headers={"X-Forwarded-For": f"203.0.113.{n}"})
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_label("Admin password").fill(f"tebakan-salah-{n}")
            page.get_by_role("button", name="Log in").click()
            alert = page.get_by_role("alert").first
            alert.wait_for()
            messages.append(alert.inner_text())
            context.close()
        browser.close()
    return messages


@pytest.fixture
def panel(monkeypatch, tmp_path):
    def start(trusted_proxies: str) -> str:
        port = free_port()
        monkeypatch.setenv("UI_LANGUAGE", "en")
        monkeypatch.setenv("ADMIN_LOGIN_FREE_ATTEMPTS", "2")
        monkeypatch.setenv("UI_TRUSTED_PROXIES", trusted_proxies)
        set_password(Settings(), PASSWORD)
        nexus = [sys.executable, "-m", "engine.cli.main"]
        log = (tmp_path / f"ui-{port}.log").open("w")
        process = subprocess.Popen(
            [*nexus, "ui", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        started.append((process, log))
        wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        return f"http://127.0.0.1:{port}"

    started: list = []
    yield start
    for process, log in started:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_a_new_forwarded_address_per_try_does_not_escape_the_throttle(panel):
    assert os.path.exists(CHROMIUM), "install Debian's chromium: apt-get install -y chromium"
    messages = login_messages(panel(""), tries=3)
    # the second failure of a client locks it (ADMIN_LOGIN_FREE_ATTEMPTS=2); with the header
    # believed, every try would be a first failure and say only "Wrong password."
    assert messages[0] == "Wrong password."
    assert all(message.startswith("Too many attempts") for message in messages[1:])


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(panel):
    messages = login_messages(panel("127.0.0.1"), tries=3)
    assert messages == ["Wrong password."] * 3
