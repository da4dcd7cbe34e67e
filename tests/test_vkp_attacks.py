"""Knowledge packages against the attacks of an adversarial review (after test_vkp_hostile).

1. A restored (untrusted) backup's catalogue must not be signed again by the admin's key: a
   version of 2**53 - 1 would be recorded by every school and freeze their updates.
2. A source that drips bytes must not hold `nexus vkp pull` forever.
3. Idle connections must not exhaust `nexus vkp serve`.
4. A catalogue signed by another trusted key (key rotation) is no way back to an old version;
   a catalogue may carry an expiry time (off by default).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.publish.packages import CataloguePublisher
from engine.settings import Settings
from engine.vkp.catalogue import (
    MAX_VERSION,
    CatalogueError,
    SeenCatalogues,
    open_catalogue,
    sign_catalogue,
)
from engine.vkp.deadline import Limits
from engine.vkp.keys import CATALOGUE, key_id, private_key
from engine.vkp.pull import pull
from engine.vkp.serve import PackageServer, RangeRequestHandler
from engine.vkp.transfer import Source, TransferError, TransferTimeout, serve
from tests.test_vkp import change_one_lesson, make_admin, school

FAST = dict(read_timeout_s=5.0, stall_window_s=30.0)


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def publish(admin) -> dict:
    built = admin.builder.build("informatika", "kelas_10")
    return CataloguePublisher(admin.settings).publish(built, "informatika", "kelas_10")


def index_path(admin) -> Path:
    return admin.settings.vkp_dir / "publish" / "vkp" / "index.json"


def signed_payload(data: bytes) -> dict:
    return json.loads(json.loads(data)["signed"])


def raw_envelope(payload_text: str, sign) -> bytes:
    """Sign any payload text, skipping `sign_catalogue`'s checks (what a buggy signer made)."""
    signature = base64.b64encode(sign(CATALOGUE + payload_text.encode())).decode()
    return json.dumps({"format": 2, "signed": payload_text, "signature": signature}).encode()


# --- 1. the admin signs only what its own key signed before --------------------------------


def test_a_restored_catalogue_with_a_huge_version_is_not_signed_again(admin, tmp_path, caplog):
    """F2: the backup's index.json says version 2**53 - 1 (its signature left stale)."""
    publish(admin)
    envelope = json.loads(index_path(admin).read_bytes())
    payload = json.loads(envelope["signed"])
    payload["version"] = MAX_VERSION
    payload["packages"]["kelas_10__informatika"]["grade"] = "kelas_11"  # and smuggled changes
    envelope["signed"] = json.dumps(payload)
    index_path(admin).write_text(json.dumps(envelope))

    change_one_lesson(admin)
    with caplog.at_level(logging.WARNING, logger="engine.publish.packages"):
        result = publish(admin)

    assert "is not a catalogue this installation signed" in caplog.text
    assert result["version"] <= time.time() + 5  # not 2**53
    payload = signed_payload(index_path(admin).read_bytes())
    package = payload["packages"]["kelas_10__informatika"]
    assert package["grade"] == "kelas_10"
    # rebuilt from the packages in the folder that carry the key's signature
    assert [v["version"] for v in package["versions"]] == ["1.0.0", "1.1.0"]
    assert [(d["from"], d["to"]) for d in package["deltas"]] == [("1.0.0", "1.1.0")]
    school_engine = school(tmp_path, admin)
    [done] = pull(
        school_engine.settings,
        school_engine.installer,
        Source(str(index_path(admin).parent.parent)),
    )
    assert done["version"] == "1.1.0"
    # and the admin's next catalogue is still newer, as the schools require
    change_one_lesson(admin)
    assert publish(admin)["version"] > result["version"]


def test_a_catalogue_this_key_signed_far_ahead_of_the_clock_is_not_continued(admin, caplog):
    """Signed by the real key (a wrong clock, or the bug before this fix): its packages are
    kept, its version is not, so the schools can follow again."""
    publish(admin)
    key = private_key(admin.settings)
    old = signed_payload(index_path(admin).read_bytes())
    ahead = int(time.time()) + 30 * 86400
    index_path(admin).write_bytes(
        sign_catalogue(old["packages"], ahead, old["published_at"], key.sign)
    )
    change_one_lesson(admin)
    with caplog.at_level(logging.WARNING, logger="engine.publish.packages"):
        version = publish(admin)["version"]
    assert "far ahead of the clock" in caplog.text
    assert version < ahead and abs(version - time.time()) < 5

    # a version a little ahead (a clock set back by an hour) is continued: never go backwards
    soon = int(time.time()) + 3600
    packages = signed_payload(index_path(admin).read_bytes())["packages"]
    index_path(admin).write_bytes(sign_catalogue(packages, soon, "x", key.sign))
    change_one_lesson(admin)
    assert publish(admin)["version"] == soon + 1


def test_only_packages_signed_by_this_key_and_named_as_signed_are_listed_again(admin, tmp_path):
    publish(admin)
    folder = index_path(admin).parent
    real = folder / "kelas_10__informatika__v1.0.0.vkp"
    index_path(admin).unlink()  # the admin "starts over", or the backup had no catalogue
    # a stranger's package and a renamed copy of a real one, dropped into the folder
    stranger = make_admin(tmp_path / "stranger")
    stranger.builder.build("informatika", "kelas_10")
    foreign = stranger.settings.vkp_dir / "built" / "kelas_10__informatika__v1.0.0.vkp"
    (folder / "kelas_12__fisika__v1.0.0.vkp").write_bytes(foreign.read_bytes())
    (folder / "kelas_10__informatika__v9.0.0.vkp").write_bytes(real.read_bytes())
    (folder / "not_a_package.vkp").write_bytes(b"PK junk")

    change_one_lesson(admin)
    publish(admin)

    packages = signed_payload(index_path(admin).read_bytes())["packages"]
    assert list(packages) == ["kelas_10__informatika"]
    package = packages["kelas_10__informatika"]
    assert [v["version"] for v in package["versions"]] == ["1.0.0", "1.1.0"]
    assert package["latest"] == "1.1.0"


def test_catalogue_versions_stay_within_2_53_on_both_sides():
    key = Ed25519PrivateKey.generate()
    assert open_catalogue(sign_catalogue({}, MAX_VERSION, "x", key.sign), [key.public_key()])
    with pytest.raises(ValueError, match="version"):
        sign_catalogue({}, MAX_VERSION + 1, "x", key.sign)
    for version in (str(MAX_VERSION + 1), "9" * 5000, "1e400", "-1", "true"):
        text = f'{{"type": "nexus-vkp-catalogue", "version": {version}, "published_at": "x",'
        data = raw_envelope(text + ' "packages": {}}', key.sign)
        with pytest.raises(CatalogueError):  # never a ValueError escaping
            open_catalogue(data, [key.public_key()])


# --- 2. a whole-request deadline and a minimum rate for pull --------------------------------


class DripServer:
    """A raw TCP server: answers with `prefix` at once, then drips `drip` a byte at a time."""

    def __init__(self, prefix: bytes, drip: bytes, every: float = 0.1):
        self.prefix, self.drip, self.every = prefix, drip, every
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.prefix)
                for byte in self.drip:
                    if self.stop.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def drip_servers():
    servers = []
    yield lambda *args, **kwargs: servers.append(DripServer(*args, **kwargs)) or servers[-1]
    for server in servers:
        server.close()


def test_a_catalogue_host_dripping_its_body_is_dropped_at_the_deadline(drip_servers):
    """F5: one byte every 0.1 s never trips a per-read timeout; the deadline ends it."""
    server = drip_servers(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"{" * 1000)
    limits = Limits(index_deadline_s=1.0, **FAST)
    started = time.monotonic()
    with pytest.raises(TransferTimeout, match="deadline of 1 s"):
        Source(server.url, limits=limits).read_index()
    assert time.monotonic() - started < 3


def test_a_host_dripping_its_status_line_or_headers_is_dropped(drip_servers):
    server = drip_servers(b"", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000)
    started = time.monotonic()
    with pytest.raises(TransferTimeout, match="no answer within 0.5 s"):
        Source(server.url, limits=Limits(read_timeout_s=5, stall_window_s=0.5)).read_index()
    with pytest.raises(TransferTimeout, match="deadline"):
        Source(server.url, limits=Limits(index_deadline_s=0.5, **FAST)).read_index()
    assert time.monotonic() - started < 4


class RecordingHandler(RangeRequestHandler):
    ranges: list[str] = []

    def send_head(self):
        RecordingHandler.ranges.append(self.headers.get("Range", ""))
        return super().send_head()


def test_a_download_below_the_minimum_rate_stops_keeps_its_part_and_resumes(tmp_path, drip_servers):
    body = bytes(range(256)) * 40
    entry = {"file": "p.vkp", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    server = drip_servers(head + body[:3000], body[3000:])  # fast, then 10 bytes a second
    limits = Limits(read_timeout_s=5, stall_window_s=0.5, stall_bytes=1024)
    downloads = tmp_path / "downloads"

    with pytest.raises(TransferTimeout, match="less than 1 KiB per 0.5 s") as caught:
        Source(server.url, limits=limits).fetch(entry, downloads)
    assert "next pull resumes" in str(caught.value)
    part = downloads / "p.vkp.part"
    assert 3000 <= part.stat().st_size < len(body)
    assert part.read_bytes() == body[: part.stat().st_size]

    # an honest server: the download resumes from the kept bytes
    kept = part.stat().st_size
    (tmp_path / "publish" / "vkp").mkdir(parents=True)
    (tmp_path / "publish" / "vkp" / "p.vkp").write_bytes(body)
    RecordingHandler.ranges = []
    handler = partial(RecordingHandler, directory=str(tmp_path / "publish"))
    honest = PackageServer(("127.0.0.1", 0), handler)
    threading.Thread(target=honest.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{honest.server_address[1]}"
        got = Source(url, limits=limits).fetch(entry, downloads)
    finally:
        honest.shutdown()
        honest.server_close()
    assert got.read_bytes() == body
    assert RecordingHandler.ranges == [f"bytes={kept}-"]
    assert sorted(p.name for p in downloads.iterdir()) == ["p.vkp"]


def test_a_slow_pull_reports_why_and_old_partial_files_are_cleaned(admin, tmp_path, drip_servers):
    publish(admin)
    index = index_path(admin).read_bytes()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(index)}\r\n\r\n".encode()
    server = drip_servers(head, index, every=0.05)
    school_engine = school(tmp_path, admin)
    downloads = school_engine.settings.vkp_dir / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "kelas_09__gone__v1.0.0.vkp.part").write_bytes(b"x")

    with pytest.raises(TransferError, match="deadline of 0.5 s"):
        pull(
            school_engine.settings,
            school_engine.installer,
            Source(server.url, limits=Limits(index_deadline_s=0.5, **FAST)),
        )
    usb = Source(str(index_path(admin).parent.parent))
    [done] = pull(school_engine.settings, school_engine.installer, usb)
    assert done["action"] == "installed"
    assert list(downloads.iterdir()) == []


def test_the_default_limits_let_a_thin_school_link_finish_a_50_mb_package():
    limits = Limits()
    assert limits.index_deadline_s == 60
    assert limits.package_deadline(10_000) == 120
    assert limits.package_deadline(50 * 10**6) >= 50 * 10**6 / (20 * 1024) > 2400  # 40 min
    # the stall check asks for about 1 KiB/s, far below such a link
    assert limits.stall_bytes / limits.stall_window_s <= 1100


# --- 3. `nexus vkp serve` bounds idle connections ----------------------------------------


@pytest.fixture
def small_server(tmp_path):
    folder = tmp_path / "publish"
    (folder / "vkp").mkdir(parents=True)
    (folder / "vkp" / "x.vkp").write_bytes(b"package")
    server = serve(folder, "127.0.0.1", 0, timeout=1.0, max_connections=2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def get(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/vkp/x.vkp")
    answer = conn.getresponse()
    return answer.status, answer.read()


def test_an_idle_connection_is_closed_after_the_timeout(small_server):
    """F6: without a timeout, each idle connection held a thread and a descriptor forever."""
    idle = socket.create_connection(("127.0.0.1", small_server), timeout=5)
    started = time.monotonic()
    assert idle.recv(1) == b""  # the server closed it
    assert time.monotonic() - started < 3
    idle.close()
    assert get(small_server) == (200, b"package")


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(small_server):
    idle = [socket.create_connection(("127.0.0.1", small_server), timeout=5) for _ in range(2)]
    time.sleep(0.1)  # both accepted
    extra = socket.create_connection(("127.0.0.1", small_server), timeout=5)
    started = time.monotonic()
    try:
        extra.sendall(b"GET /vkp/x.vkp HTTP/1.0\r\n\r\n")
        answer = extra.recv(1024)
    except ConnectionResetError:  # closed before the request was read: also a refusal
        answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.0 503")
    assert time.monotonic() - started < 0.5  # at once, not when an idle slot times out
    for sock in idle + [extra]:
        sock.close()
    deadline = time.monotonic() + 5
    while True:  # the slots come back as the idle connections end
        try:
            assert get(small_server) == (200, b"package")
            break
        except (AssertionError, OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- 4. one highest version across keys; optional expiry -----------------------------------


def test_an_older_catalogue_signed_by_the_other_trusted_key_is_refused(tmp_path):
    """F8: during a key rotation both keys are trusted; the record is one for all keys."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = [old.public_key(), new.public_key()]
    seen = SeenCatalogues(tmp_path / "catalogue_seen.json")
    stale = sign_catalogue({}, 1_700_000_000, "2023-11-14", old.sign)
    seen.accept(open_catalogue(sign_catalogue({}, 1_800_000_000, "2027-01-15", new.sign), trusted))
    with pytest.raises(CatalogueError, match="older than one already seen"):
        seen.accept(open_catalogue(stale, trusted))
    seen.accept(open_catalogue(sign_catalogue({}, 1_800_000_001, "2027-01-16", old.sign), trusted))
    assert SeenCatalogues(seen.path).highest()["version"] == 1_800_000_001


def test_a_record_kept_per_key_by_an_earlier_version_still_counts(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "catalogue_seen.json"
    path.write_text(
        json.dumps(
            {"0123456789abcdef": {"version": 1_800_000_000}, "fedcba9876543210": {"version": 5}}
        )
    )
    seen = SeenCatalogues(path)
    with pytest.raises(CatalogueError, match="older"):
        seen.accept(
            open_catalogue(sign_catalogue({}, 1_750_000_000, "x", key.sign), [key.public_key()])
        )
    seen.accept(
        open_catalogue(sign_catalogue({}, 1_900_000_000, "y", key.sign), [key.public_key()])
    )
    assert json.loads(path.read_text()) == {
        "version": 1_900_000_000,
        "published_at": "y",
        "key_id": key_id(key.public_key()),
    }
    path.write_text('{"version": "high"}')
    with pytest.raises(CatalogueError, match="not a number"):
        seen.accept(
            open_catalogue(sign_catalogue({}, 2_000_000_000, "z", key.sign), [key.public_key()])
        )


def test_an_expired_catalogue_is_refused(tmp_path):
    key = Ed25519PrivateKey.generate()
    trusted = [key.public_key()]
    now = datetime(2030, 1, 1, tzinfo=UTC)
    data = sign_catalogue({}, 10, "x", key.sign, expires="2030-01-08T00:00:00+00:00")
    assert open_catalogue(data, trusted, now=now).expires == "2030-01-08T00:00:00+00:00"
    with pytest.raises(CatalogueError, match="expired on 2030-01-08"):
        open_catalogue(data, trusted, now=now + timedelta(days=8))
    for bad in ('"2030-01-08T00:00:00"', '"next week"', "1893456000", '"' + "9" * 100 + '"'):
        text = (
            '{"type": "nexus-vkp-catalogue", "version": 1, "published_at": "x",'
            f' "expires": {bad}, "packages": {{}}}}'
        )
        with pytest.raises(CatalogueError, match="not valid"):
            open_catalogue(raw_envelope(text, key.sign), trusted)


def test_the_publisher_sets_an_expiry_only_when_asked(admin):
    assert Settings().vkp_catalogue_expires_days == 0
    publish(admin)
    assert "expires" not in signed_payload(index_path(admin).read_bytes())

    admin.settings.vkp_catalogue_expires_days = 7
    change_one_lesson(admin)
    publish(admin)
    expires = datetime.fromisoformat(signed_payload(index_path(admin).read_bytes())["expires"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    data = index_path(admin).read_bytes()
    trusted = [private_key(admin.settings).public_key()]
    assert open_catalogue(data, trusted)
    with pytest.raises(CatalogueError, match="expired"):
        open_catalogue(data, trusted, now=datetime.now(UTC) + timedelta(days=8))
