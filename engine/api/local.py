"""The API inside the running engine, and how a `nexus` command on the same machine finds it.

`nexus up` serves the HTTP API from a thread beside the watcher, sharing its warm embedder.
It also creates a key for local commands (named `nexus-local`, replaced at every start) and
writes the address and key to `<data>/run/api.json` (mode 0600): whoever can read the data dir
can read everything in it anyway. `nexus search` reads that file and asks the running engine
(a warm model answers in milliseconds), and works alone when the engine is not running or
does not answer.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from engine.settings import Settings
from engine.util import local_url

log = logging.getLogger(__name__)

LOCAL_KEY_NAME = "nexus-local"


def api_file(settings: Settings) -> Path:
    return settings.run_dir / "api.json"


class ApiServer:
    """uvicorn in a daemon thread; `stop()` ends it and withdraws the local key."""

    def __init__(self, settings: Settings, engine_factory: Callable, *, port: int | None = None):
        import uvicorn

        from engine.api.app import create_app

        self.settings = settings
        self.port = settings.api_port if port is None else port
        config = uvicorn.Config(
            create_app(engine_factory),
            host=settings.api_address,
            port=self.port,
            access_log=False,  # request lines carry the question (?q=...)
            log_config=None,
            log_level=settings.log_level.lower(),
        )
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # the engine handles signals
        self.thread = threading.Thread(target=self._serve, name="api", daemon=True)

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn's start-up failed (logged by uvicorn): start() says so
            pass

    def start(self, timeout_s: float = 30.0) -> str:
        """Serve, wait until it listens, publish the local key; returns the base URL.

        Raises:
            RuntimeError: it did not listen within `timeout_s` (the server is then stopped).
        """
        from engine.auth.api_keys import api_key_store

        self.thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started and self.thread.is_alive() and waited < timeout_s:
            deadline.wait(0.05)
            waited += 0.05
        if not self.server.started:
            # still building its engine: told to exit, it closes once that ends, instead of
            # listening later with no api.json and nobody to stop it
            self.server.should_exit = True
            self.thread.join(timeout=timeout_s)
            raise RuntimeError(
                f"the API did not start on {self.settings.api_address}:{self.port}"
                " (the log above says why)"
            )
        url = local_url(self.settings.api_address, self.port)
        keys = api_key_store(self.settings.data_dir)
        keys.revoke(LOCAL_KEY_NAME)
        key = keys.create(LOCAL_KEY_NAME)
        target = api_file(self.settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": url, "key": key}, fh)
        os.replace(tmp, target)
        return url

    def stop(self) -> None:
        from engine.auth.api_keys import api_key_store

        api_file(self.settings).unlink(missing_ok=True)
        api_key_store(self.settings.data_dir).revoke(LOCAL_KEY_NAME)
        self.server.should_exit = True
        self.thread.join(timeout=15)


def search_running_engine(
    settings: Settings, params: dict, *, timeout_s: float = 5.0
) -> list[dict] | None:
    """Search through the running engine's API; None when there is none or it failed."""
    from engine.runtime.state import read_state

    try:
        local = json.loads(api_file(settings).read_text())
    except (OSError, ValueError):
        return None
    if not read_state(settings).get("running"):
        return None
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    request = urllib.request.Request(
        f"{local['url']}/v1/search?{query}", headers={"Authorization": f"Bearer {local['key']}"}
    )
    try:
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with no_proxy.open(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())["results"]
    except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
        log.info("the running engine did not answer (%s); searching alone", exc)
        return None
