"""Knowledge packages against a hostile catalogue host, network or package file.

Only the holder of the signing key is trusted. Each test plays one attack and checks what a
school server would see: refused with a reason, nothing installed, nothing written outside the
downloads folder, nothing left behind, memory bounded.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import random
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from engine.app import build_engine
from engine.publish.packages import CataloguePublisher
from engine.settings import Settings
from engine.vkp.keys import keygen, trusted_keys
from engine.vkp.package import PackageError
from engine.vkp.pull import pull
from engine.vkp.transfer import Source, TransferError
from tests.support import pdfs
from tests.support.fakes import FakeEmbedder
from tests.support.locks import lock_waits
from tests.test_vkp import built_file, change_one_lesson, make_admin, school

MiB = 1024**2


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def school_trusting_its_key_folder(tmp_path: Path, admin, name: str = "school"):
    """A school with the default trust store: every `<data>/keys/*.pub` is trusted."""
    settings = Settings(NEXUS_DATA_DIR=tmp_path / name)
    (settings.data_dir / "keys").mkdir(parents=True)
    shutil.copy(
        admin.settings.data_dir / "keys" / "vkp_signing.pub",
        settings.data_dir / "keys" / "admin.pub",
    )
    return build_engine(settings, embedder=FakeEmbedder())


def publish(admin, subject: str = "informatika", grade: str = "kelas_10") -> Path:
    CataloguePublisher(admin.settings).publish(admin.builder.build(subject, grade), subject, grade)
    return admin.settings.vkp_dir / "publish"


def sign_raw_catalogue(admin, payload: dict) -> bytes:
    """Sign any payload with the admin's key, skipping the publisher's own checks (a key
    holder's mistake, or a bug): the school must still refuse what is unsafe."""
    from engine.vkp.keys import CATALOGUE, signer

    text = json.dumps(payload)
    signature = signer(admin.settings)(CATALOGUE + text.encode())
    envelope = {"format": 2, "signed": text, "signature": base64.b64encode(signature).decode()}
    return json.dumps(envelope).encode()


def entry_for(path: Path, version: str) -> dict:
    data = path.read_bytes()
    return {
        "version": version,
        "file": path.name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def listing(grade: str, subject: str, full: dict) -> dict:
    """A catalogue's entry for a package with one version."""
    versions = {"latest": full["version"], "full": full, "versions": [full], "deltas": []}
    return {"grade": grade, "subject": subject} | versions


def catalogue_payload(packages: dict, version: int = 2**40) -> dict:
    return {
        "type": "nexus-vkp-catalogue",
        "version": version,
        "published_at": "2030-01-01T00:00:00+00:00",
        "packages": packages,
    }


def downloads(engine) -> list[str]:
    folder = engine.settings.vkp_dir / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- 1. the catalogue is signed, versioned, and names only plain files --------------------


def test_an_unsigned_catalogue_cannot_plant_a_trusted_key(admin, tmp_path):
    """The old attack: an unsigned index.json whose `file` climbs into the keys folder."""
    usb = publish(admin)
    school_engine = school_trusting_its_key_folder(tmp_path, admin)
    evil = tmp_path / "attacker" / "evil.pub"
    keygen(tmp_path / "attacker")
    (tmp_path / "attacker" / "vkp_signing.pub").rename(evil)
    planted = usb / "vkp" / "../../keys/evil.pub"  # where the source side reads it from
    planted.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(evil, planted)
    entry = entry_for(evil, "9.0.0") | {"file": "../../keys/evil.pub"}
    packages = {"kelas_10__informatika": listing("kelas_10", "informatika", entry)}
    (usb / "vkp" / "index.json").write_text(json.dumps({"format": 1, "packages": packages}))

    with pytest.raises(TransferError, match="not a signed catalogue"):
        pull(school_engine.settings, school_engine.installer, Source(str(usb)))

    assert not (school_engine.settings.data_dir / "keys" / "evil.pub").exists()
    assert len(trusted_keys(school_engine.settings)) == 1
    assert downloads(school_engine) == []


@pytest.mark.parametrize(
    "name", ["../../keys/evil.pub", "/tmp/evil.vkp", "sub/x.vkp", "a\0b.vkp", "..", ".x.vkp"]
)
def test_fetch_writes_only_plain_names_inside_downloads(tmp_path, name):
    source = tmp_path / "usb" / "vkp"
    source.mkdir(parents=True)
    data = b"PK not really"
    folder = tmp_path / "data" / "vkp" / "downloads"
    entry = {"file": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if "\0" not in name and not name.startswith("/") and name != "..":
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)

    with pytest.raises(TransferError, match="plain file name"):
        Source(str(tmp_path / "usb")).fetch(entry, folder)

    assert not (tmp_path / "data" / "keys").exists()
    assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["../../keys/evil.vkp", "/etc/cron.d/evil.vkp", "x/../y.vkp"])
def test_a_signed_catalogue_naming_a_path_is_refused_before_anything_is_fetched(
    admin,
    tmp_path,
    name,
):
    usb = publish(admin)
    built = built_file(admin, "kelas_10__informatika__v1.0.0.vkp")
    entry = entry_for(built, "1.0.0") | {"file": name}
    payload = catalogue_payload(
        {"kelas_10__informatika": listing("kelas_10", "informatika", entry)}
    )
    (usb / "vkp" / "index.json").write_bytes(sign_raw_catalogue(admin, payload))
    school_engine = school(tmp_path, admin)

    with pytest.raises(TransferError, match="plain file name"):
        pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    assert school_engine.installer.installed() == {} and downloads(school_engine) == []


def test_a_tampered_or_foreign_catalogue_is_refused(admin, tmp_path):
    usb = publish(admin)
    index = usb / "vkp" / "index.json"
    school_engine = school(tmp_path, admin)
    good = index.read_bytes()
    envelope = json.loads(good)
    envelope["signed"] = envelope["signed"].replace('"1.0.0"', '"1.0.1"', 1)
    index.write_text(json.dumps(envelope))
    with pytest.raises(TransferError, match="signature does not match"):
        pull(school_engine.settings, school_engine.installer, Source(str(usb)))

    keygen(tmp_path / "stranger")
    stranger = Settings(
        NEXUS_DATA_DIR=tmp_path / "x",
        VKP_TRUSTED_KEYS=str(tmp_path / "stranger" / "vkp_signing.pub"),
    )
    index.write_bytes(good)
    stranger_engine = build_engine(stranger, embedder=FakeEmbedder())
    with pytest.raises(TransferError, match="signature does not match"):
        pull(stranger, stranger_engine.installer, Source(str(usb)))
    assert school_engine.installer.installed() == {} == stranger_engine.installer.installed()


def test_an_older_signed_catalogue_cannot_be_replayed(admin, tmp_path):
    usb = publish(admin)
    old_index = (usb / "vkp" / "index.json").read_bytes()
    old_file = (usb / "vkp" / "kelas_10__informatika__v1.0.0.vkp").read_bytes()
    change_one_lesson(admin)
    publish(admin)
    school_engine = school(tmp_path, admin)
    [done] = pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    assert done["version"] == "1.1.0"

    # the host serves last week's (validly signed) catalogue and files again
    (usb / "vkp" / "index.json").write_bytes(old_index)
    (usb / "vkp" / "kelas_10__informatika__v1.0.0.vkp").write_bytes(old_file)
    with pytest.raises(TransferError, match="older than one already seen"):
        pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    # the record survives a restart (it is kept on disk)
    restarted = school(tmp_path, admin)
    with pytest.raises(TransferError, match="older than one already seen"):
        pull(restarted.settings, restarted.installer, Source(str(usb)))
    assert restarted.installer.installed()["kelas_10__informatika"].version == "1.1.0"


# --- 2. declared size is a hard limit; the digest is checked before the file is used ------


class Oversized(http.server.BaseHTTPRequestHandler):
    """Serves the real package followed by endless zeros, without a Content-Length."""

    body = b""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            self.wfile.write(Oversized.body)
            for _ in range(320):  # 20 MiB more
                self.wfile.write(b"\0" * 65536)
        except OSError:
            pass


@pytest.fixture
def oversized_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Oversized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_download_never_grows_past_the_declared_size(tmp_path, oversized_server):
    Oversized.body = body = b"package bytes " * 1000
    entry = {"file": "p.vkp", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    folder = tmp_path / "downloads"
    seen: list[int] = []

    with pytest.raises(TransferError, match="more than"):
        Source(oversized_server).fetch(entry, folder, lambda done, total: seen.append(done))

    assert max(seen) <= len(body)
    assert list(folder.iterdir()) == []  # the .part is gone too


def test_a_file_that_fails_its_checksum_is_never_kept(tmp_path):
    (tmp_path / "usb" / "vkp").mkdir(parents=True)
    (tmp_path / "usb" / "vkp" / "p.vkp").write_bytes(b"x" * 100)
    entry = {"file": "p.vkp", "size": 100, "sha256": "0" * 64}
    with pytest.raises(TransferError, match="checksum"):
        Source(str(tmp_path / "usb")).fetch(entry, tmp_path / "downloads")
    assert list((tmp_path / "downloads").iterdir()) == []


# --- 3. the package must be the one the catalogue promised -------------------------------


def test_a_signed_package_under_another_name_or_version_is_refused(admin, tmp_path):
    pdfs.text_pdf(admin.settings.inbox_dir / "kelas_9" / "ipa" / "kecil.pdf", ["Energi kinetik."])
    admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)
    publish(admin)
    usb = publish(admin, "ipa", "kelas_9")
    biology = entry_for(usb / "vkp" / "kelas_9__ipa__v1.0.0.vkp", "1.0.0")
    informatika = entry_for(usb / "vkp" / "kelas_10__informatika__v1.0.0.vkp", "7.0.0")
    packages = {
        "kelas_9__fisika": listing("kelas_9", "fisika", biology),
        "kelas_10__informatika": listing("kelas_10", "informatika", informatika),
    }
    (usb / "vkp" / "index.json").write_bytes(sign_raw_catalogue(admin, catalogue_payload(packages)))
    school_engine = school(tmp_path, admin)

    outcome = pull(school_engine.settings, school_engine.installer, Source(str(usb)))

    assert [(r["package"], r["action"]) for r in outcome] == [
        ("kelas_10__informatika", "failed"),
        ("kelas_9__fisika", "failed"),
    ]
    assert "promised version '7.0.0'" in outcome[0]["error"]
    assert "promised subject 'fisika'" in outcome[1]["error"]
    assert school_engine.installer.installed() == {}
    assert downloads(school_engine) == []  # a refused install leaves no file behind


# --- 4. downgrades -----------------------------------------------------------------------


def test_installing_an_older_version_needs_an_explicit_downgrade(admin, tmp_path, capsys):
    a = admin.builder.build("informatika", "kelas_10")
    change_one_lesson(admin)
    b = admin.builder.build("informatika", "kelas_10")
    school_engine = school(tmp_path, admin)
    school_engine.installer.install(built_file(admin, b.file))

    with pytest.raises(PackageError, match="older than the installed v1.1.0"):
        school_engine.installer.install(built_file(admin, a.file))
    assert school_engine.installer.installed()["kelas_10__informatika"].version == "1.1.0"

    back = school_engine.installer.install(built_file(admin, a.file), allow_downgrade=True)
    assert (back.version, back.previous_version) == ("1.0.0", "1.1.0")

    from engine.cli.main import build_parser

    for command in ("install", "pull"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["vkp", command, "--help"])
        assert "--allow-downgrade" in capsys.readouterr().out


def test_pull_does_not_follow_a_catalogue_back_to_an_older_version(admin, tmp_path):
    usb = publish(admin)
    school_engine = school(tmp_path, admin)
    change_one_lesson(admin)
    newer = admin.builder.build("informatika", "kelas_10")
    school_engine.installer.install(built_file(admin, newer.file))

    [kept] = pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    assert kept["action"] == "kept" and "--allow-downgrade" in kept["error"]
    assert school_engine.installer.installed()["kelas_10__informatika"].version == "1.1.0"

    [done] = pull(
        school_engine.settings, school_engine.installer, Source(str(usb)), allow_downgrade=True
    )
    assert (done["action"], done["version"]) == ("installed", "1.0.0")


# --- 5. one unambiguous package name ------------------------------------------------------


def test_grade_subject_pairs_that_used_to_collide_stay_apart(admin, tmp_path):
    """`informatika`/`kelas_10` and `informatika_kelas`/`10` were both `informatika_kelas_10`."""
    pdfs.text_pdf(
        admin.settings.inbox_dir / "10" / "informatika_kelas" / "lain.pdf", ["Sistem operasi."]
    )
    admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)
    catalogue = CataloguePublisher(admin.settings)
    first = admin.builder.build("informatika", "kelas_10")
    catalogue.publish(first, "informatika", "kelas_10")
    second = admin.builder.build("informatika_kelas", "10")
    catalogue.publish(second, "informatika_kelas", "10")

    assert (first.file, second.file) == (
        "kelas_10__informatika__v1.0.0.vkp",
        "10__informatika_kelas__v1.0.0.vkp",
    )
    assert sorted(catalogue.index()["packages"]) == [
        "10__informatika_kelas",
        "kelas_10__informatika",
    ]
    school_engine = school(tmp_path, admin)
    pull(school_engine.settings, school_engine.installer, Source(str(catalogue.folder.parent)))
    installed = school_engine.installer.installed()
    assert {k: (v.grade, v.subject) for k, v in installed.items()} == {
        "10__informatika_kelas": ("10", "informatika_kelas"),
        "kelas_10__informatika": ("kelas_10", "informatika"),
    }


def test_package_names_are_built_from_checked_names_only():
    from engine.names import BadName
    from engine.vkp.manifest import package_file

    assert package_file("kelas_10", "informatika", "1.2.0", "1.1.0") == (
        "kelas_10__informatika__v1.1.0_to_v1.2.0.vkp"
    )
    for grade, subject, version in (
        ("kelas__10", "ipa", "1.0.0"),
        ("kelas_10", "../ipa", "1.0.0"),
        ("Kelas 10", "ipa", "1.0.0"),
        ("kelas_10", "ipa", "1.0.0/../../x"),
        ("kelas_10", "ipa", "01.0.0"),
    ):
        with pytest.raises((BadName, ValueError)):
            package_file(grade, subject, version)


# --- 6. compression bombs: capped reads, signature first, bounded memory ------------------


MEASURE = """
import json, resource, sys
from pathlib import Path
from cryptography.hazmat.primitives import serialization
from engine.vkp.package import PackageError, read_package

keys = [serialization.load_pem_public_key(Path(sys.argv[2]).read_bytes())]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    if sys.argv[3] == "verify":  # what `nexus vkp verify` does
        read_package(Path(sys.argv[1]), keys, load=False)
    else:  # what install does
        read_package(Path(sys.argv[1]), keys)
    outcome = "accepted"
except PackageError as exc:
    outcome = "refused: " + str(exc)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "growth_mib": growth / 1024}))
"""


def read_in_a_subprocess(package: Path, public_key: Path, mode: str) -> dict:
    """Read (`verify` or `install`) a package in a fresh interpreter: outcome, and how much
    its peak memory grew during the read."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(package), str(public_key), mode],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def write_bomb(archive: zipfile.ZipFile, name: str, mib: int) -> None:
    """`mib` MiB that deflate about 140:1: mostly zeros, so it is fast to make, with one byte
    in 1024 set so that the ratio stays under the archive's quick ratio check."""
    block = bytearray(MiB)
    rng = random.Random(7)
    for at in range(0, MiB, 1024):
        block[at] = rng.randrange(1, 256)
    with archive.open(name, "w") as member:
        for _ in range(mib):
            member.write(block)


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    keygen(folder)
    return folder


def test_an_unsigned_package_whose_manifest_inflates_to_300_mib_is_refused_in_little_memory(
    tmp_path, key_pair
):
    bomb = tmp_path / "bomb.vkp"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        write_bomb(archive, "manifest.json", 300)
        archive.writestr("manifest.sig", b"\0" * 64)
        archive.writestr("chunks.jsonl", b"")
        archive.writestr("vectors.f32", b"")
    assert bomb.stat().st_size < 4 * MiB

    result = read_in_a_subprocess(bomb, key_pair / "vkp_signing.pub", "verify")

    assert result["outcome"].startswith("refused: ") and "manifest.json" in result["outcome"]
    assert result["growth_mib"] < 64, result


def test_a_signed_package_whose_chunks_inflate_past_their_signed_size_is_refused_in_little_memory(
    tmp_path, key_pair
):
    real = write_signed(tmp_path / "real.vkp", signer_for(key_pair))
    bomb = tmp_path / "bomb.vkp"
    with (
        zipfile.ZipFile(real) as original,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as copy,
    ):
        for info in original.infolist():
            if info.filename == "chunks.jsonl":
                write_bomb(copy, "chunks.jsonl", 300)
            else:
                copy.writestr(info.filename, original.read(info.filename))

    public = key_pair / "vkp_signing.pub"
    for mode in ("verify", "install"):
        result = read_in_a_subprocess(bomb, public, mode)
        assert result["outcome"].startswith("refused: ") and "chunks.jsonl" in result["outcome"]
        assert result["growth_mib"] < 64, result
    assert read_in_a_subprocess(real, public, "install")["outcome"] == "accepted"


def write_signed(path: Path, sign) -> Path:
    """A small valid package, without ingesting anything."""
    from engine.store.chunks import StoredChunk
    from engine.vkp.package import content_digest, write_package

    chunks = [StoredChunk(f"c{i}", f"teks {i}", {"source": "a.pdf"}, [0.5] * 8) for i in range(3)]
    manifest = {
        "grade": "kelas_10",
        "subject": "informatika",
        "version": "1.0.0",
        "kind": "full",
        "embedding": {"model_id": "fake/fake-8", "model_key": "fake-8", "dimension": 8},
        "documents": [],
        "content_digest": content_digest(chunks),
    }
    return write_package(path, manifest, chunks, sign)


def signer_for(folder: Path):
    from engine.vkp.keys import signer

    return signer(Settings(VKP_SIGNING_KEY=str(folder / "vkp_signing.key")))


# --- 7. signed values that reach paths, globs or deletions are checked --------------------


def resign(source: Path, target: Path, changes: dict, sign) -> Path:
    """A copy of a package whose manifest is changed and signed again with the real key."""
    from engine.vkp.keys import MANIFEST

    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        manifest = json.loads(original.read("manifest.json")) | changes
        manifest_bytes = json.dumps(manifest).encode()
        copy.writestr("manifest.json", manifest_bytes)
        copy.writestr("manifest.sig", sign(MANIFEST + manifest_bytes))
        for name in ("chunks.jsonl", "vectors.f32"):
            copy.writestr(name, original.read(name))
    return target


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "../../../../escape"},
        {"version": "1.0"},
        {"version": "1.0.0\n"},
        {"grade": "kelas_10/../../x"},
        {"subject": "informatika__x"},
        {"subject": "*"},
        {"kind": "delta", "base_version": "../1.0.0", "removed_ids": []},
        {"embedding": {"model_id": "m", "model_key": "../../m", "dimension": 8}},
    ],
)
def test_signed_manifest_values_used_in_names_and_paths_are_checked(tmp_path, key_pair, changes):
    from engine.vkp.package import read_package

    sign = signer_for(key_pair)
    bad = resign(write_signed(tmp_path / "real.vkp", sign), tmp_path / "bad.vkp", changes, sign)
    keys = trusted_keys(Settings(VKP_TRUSTED_KEYS=str(key_pair / "vkp_signing.pub")))

    with pytest.raises(PackageError, match="manifest is not valid"):
        read_package(bad, keys)


# --- 8. building takes the ingestion lock ------------------------------------------------


def test_build_waits_for_the_ingestion_lock(admin):
    from engine.locking import writer_lock

    built: list = []
    with writer_lock(admin.settings.run_dir), lock_waits() as waiting:  # an ingestion runs
        worker = threading.Thread(
            target=lambda: built.append(admin.builder.build("informatika", "kelas_10"))
        )
        worker.start()
        assert waiting.wait(60)
        assert worker.is_alive() and built == []
        assert not list((admin.settings.vkp_dir / "built").glob("*.vkp"))
    worker.join(60)
    assert built and built[0].version == "1.0.0"


def test_install_and_rollback_wait_for_the_ingestion_lock(admin, tmp_path):
    """An install switches catalogue rows and lexical index: never in the middle of a job."""
    from engine.locking import writer_lock

    built = admin.builder.build("informatika", "kelas_10")
    school = school_trusting_its_key_folder(tmp_path, admin)
    done: list = []
    # an ingestion is running on the school server
    with writer_lock(school.settings.run_dir), lock_waits() as waiting:
        worker = threading.Thread(
            target=lambda: done.append(
                school.installer.install(admin.settings.vkp_dir / "built" / built.file)
            )
        )
        worker.start()
        assert waiting.wait(60)
        assert worker.is_alive() and done == []
        assert school.installer.installed() == {}
    worker.join(60)
    assert done and done[0].version == "1.0.0"
