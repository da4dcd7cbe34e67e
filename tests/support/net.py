"""Local ports for tests: one nobody listens on, for servers and for simulated outages."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bind, read, release)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An endpoint URL that refuses connections: AWS or Bedrock "unreachable"."""
    return f"http://127.0.0.1:{free_port()}"
