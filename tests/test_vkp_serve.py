"""`nexus vkp serve`'s HTTP: byte ranges as RFC 9110 has them, nothing outside the folder."""

from __future__ import annotations

import http.client
import os
import threading

import pytest

from engine.vkp.transfer import parse_range, serve


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "publish"
    (folder / "vkp").mkdir(parents=True)
    (folder / "vkp" / "pkg.vkp").write_bytes(bytes(range(100)))
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", folder / "vkp" / "link.txt")
    server = serve(folder, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def get(port: int, path: str, range_header: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Range": range_header} if range_header else {})
    answer = conn.getresponse()
    return answer.status, dict(answer.getheaders()), answer.read()


def test_full_download_advertises_ranges(served):
    status, headers, body = get(served, "/vkp/pkg.vkp")
    assert (status, headers["Accept-Ranges"], headers["Content-Length"]) == (200, "bytes", "100")
    assert body == bytes(range(100))


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=95-500", 95, 99),
    ],
)
def test_satisfiable_ranges_get_206_with_exact_bytes(served, header, first, last):
    status, headers, body = get(served, "/vkp/pkg.vkp", header)
    assert status == 206
    assert headers["Content-Range"] == f"bytes {first}-{last}/100"
    assert int(headers["Content-Length"]) == len(body) == last - first + 1
    assert body == bytes(range(first, last + 1))


@pytest.mark.parametrize("header", ["bytes=5-3", "bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable_ranges_get_416_never_a_negative_length(served, header):
    status, headers, body = get(served, "/vkp/pkg.vkp", header)
    assert status == 416 and headers["Content-Range"] == "bytes */100" and body == b""


def test_multiple_ranges_are_answered_with_the_whole_file(served):
    status, _, body = get(served, "/vkp/pkg.vkp", "bytes=0-1,5-6")
    assert status == 200 and len(body) == 100


@pytest.mark.parametrize(
    "path", ["/vkp/link.txt", "/../secret.txt", "/%2e%2e/secret.txt", "/vkp/", "/nothing"]
)
def test_nothing_outside_the_folder_and_no_listings(served, path):
    status, _, body = get(served, path)
    assert status == 404 and b"outside" not in body


def test_parse_range_edge_cases():
    assert parse_range("", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=-", 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=0-", 0) == (-1, -1)
