"""Is a service of this installation answering? (the HTTP API, the Chroma server)

Each probe asks over loopback, without proxies, within a short timeout, and never raises.
`api_url` is the one place that turns API_ADDRESS/API_PORT into the URL this machine calls.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from engine.settings import Settings
from engine.util import local_url


def probe_http(url: str, timeout_s: float = 0.5) -> bool:
    """True when `url` answers with a 2xx status within `timeout_s`."""
    try:
        with loopback_opener().open(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):  # refused, timed out, HTTP error, bad URL
        return False


def loopback_opener() -> urllib.request.OpenerDirector:
    """urllib without proxies: calls to this machine never go through `http_proxy`, which
    would see the question and the local API key."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api_url(settings: Settings) -> str:
    """Base URL of the HTTP API (API_ADDRESS:API_PORT), as seen from this machine."""
    return local_url(settings.api_address, settings.api_port)


def api_status(settings: Settings, timeout_s: float = 0.5) -> bool:
    """Is the HTTP API answering `GET /v1/health`?"""
    return probe_http(f"{api_url(settings)}/v1/health", timeout_s)


def chroma_status(settings: Settings, timeout_s: float = 0.5) -> str:
    """`up` or `down` for a Chroma server (CHROMA_HOST or the one `nexus up` started);
    `embedded` when there is none and the data folder is opened directly."""
    from engine.store.client import running_server

    server = (settings.chroma_host, settings.chroma_port) if settings.chroma_host else None
    server = server or running_server(settings)
    if server is None:
        return "embedded"
    url = f"{local_url(server[0], server[1])}/api/v2/heartbeat"
    return "up" if probe_http(url, timeout_s) else "down"
