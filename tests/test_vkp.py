"""Knowledge packages: build, sign, verify, install, delta, pull with resume, rollback, refusals."""

from __future__ import annotations

import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest

from engine.app import build_engine
from engine.publish.packages import CataloguePublisher
from engine.settings import Settings
from engine.vkp.build import NothingToBuild
from engine.vkp.keys import keygen
from engine.vkp.package import PackageError
from engine.vkp.pull import pull
from engine.vkp.transfer import RangeRequestHandler, Source, TransferError
from tests.support import pdfs
from tests.support.cli import nexus
from tests.support.fakes import FakeEmbedder

QUESTIONS = ["topologi jaringan bintang", "basis data kunci primer", "algoritma diagram alir"]


@pytest.fixture
def admin(tmp_path):
    return make_admin(tmp_path)


def make_admin(tmp_path: Path):
    """The admin's installation: three lessons ingested, a signing key."""
    settings = Settings(NEXUS_DATA_DIR=tmp_path / "admin")
    engine = build_engine(settings, embedder=FakeEmbedder())
    keygen(settings.data_dir / "keys")
    inbox = settings.inbox_dir
    subject = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(subject / "jaringan.pdf", pdfs.lesson_pages("topologi jaringan bintang", 2))
    pdfs.text_pdf(subject / "basis_data.pdf", pdfs.lesson_pages("basis data kunci primer", 2))
    pdfs.text_pdf(subject / "algoritma.pdf", pdfs.lesson_pages("algoritma diagram alir", 2))
    engine.ingestor.run([inbox], inbox)
    return engine


def school(tmp_path, admin, name: str = "school"):
    settings = Settings(
        NEXUS_DATA_DIR=tmp_path / name,
        VKP_TRUSTED_KEYS=str(admin.settings.data_dir / "keys" / "vkp_signing.pub"),
    )
    return build_engine(settings, embedder=FakeEmbedder())


def built_file(engine, name: str) -> Path:
    return engine.settings.vkp_dir / "built" / name


def results(engine) -> list[list[tuple]]:
    return [
        [(h.source, h.pages, h.text) for h in engine.searcher.search(q, k=3)] for q in QUESTIONS
    ]


def change_one_lesson(admin) -> None:
    path = admin.settings.inbox_dir / "kelas_10" / "informatika" / "jaringan.pdf"
    pdfs.text_pdf(path, pdfs.lesson_pages("topologi jaringan cincin", 2))
    admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)


def installed_collection(engine) -> list:
    [row] = engine.installer.installed().values()
    return sorted(engine.store.get_chunks(row.collection), key=lambda c: c.id)


def test_build_verify_install_gives_the_same_search_results(admin, tmp_path):
    built = admin.builder.build("informatika", "kelas_10")
    assert (built.version, built.file) == ("1.0.0", "kelas_10__informatika__v1.0.0.vkp")
    school_engine = school(tmp_path, admin)

    manifest = school_engine.installer.verify(built_file(admin, built.file))
    assert manifest["embedding"] == {
        "model_id": "fake/fake-64",
        "model_key": "fake-64",
        "dimension": 64,
    }
    assert sorted(d["file"] for d in manifest["documents"]) == [
        "algoritma.pdf",
        "basis_data.pdf",
        "jaringan.pdf",
    ]
    assert set(manifest["members"]) == {"chunks.jsonl", "vectors.f32"}

    school_engine.installer.install(built_file(admin, built.file))

    assert results(school_engine) == results(admin)
    assert (
        school_engine.searcher.search("kunci primer", mode="lexical")[0].source == "basis_data.pdf"
    )
    # the school's own recovery keeps the installed package (it is not an orphan)
    school_engine.records.recover()
    assert results(school_engine) == results(admin)


def test_versions_bump_automatically_and_nothing_changed_is_refused(admin):
    assert admin.builder.build("informatika", "kelas_10").version == "1.0.0"
    with pytest.raises(NothingToBuild, match="nothing changed since v1.0.0"):
        admin.builder.build("informatika", "kelas_10")
    change_one_lesson(admin)
    assert admin.builder.build("informatika", "kelas_10").version == "1.1.0"
    # a new embedding model is a major version
    admin.embedder = admin.ingestor.embedder = admin.records.embedder = FakeEmbedder("other-32", 32)
    admin.builder.preferred_model_key = "other-32"
    admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)
    assert admin.builder.build("informatika", "kelas_10").version == "2.0.0"


def test_full_a_plus_delta_equals_full_b_and_rollback_returns_to_a(admin, tmp_path):
    a = admin.builder.build("informatika", "kelas_10")
    change_one_lesson(admin)
    b = admin.builder.build("informatika", "kelas_10")
    assert b.delta_file == "kelas_10__informatika__v1.0.0_to_v1.1.0.vkp" and b.delta_size < b.size

    updated, fresh = school(tmp_path, admin, "updated"), school(tmp_path, admin, "fresh")
    updated.installer.install(built_file(admin, a.file))
    before = results(updated)
    updated.installer.install(built_file(admin, b.delta_file))
    fresh.installer.install(built_file(admin, b.file))

    assert installed_collection(updated) == installed_collection(fresh)  # byte for byte
    assert results(updated) == results(fresh) == results(admin)

    back = updated.installer.rollback("informatika", "kelas_10")
    assert (back.version, back.previous_version) == ("1.0.0", "1.1.0")
    assert results(updated) == before
    assert updated.searcher.search("cincin", mode="lexical") == []  # lexical index rolled back too


def test_a_delta_for_another_base_is_refused(admin, tmp_path):
    admin.builder.build("informatika", "kelas_10")
    change_one_lesson(admin)
    b = admin.builder.build("informatika", "kelas_10")
    school_engine = school(tmp_path, admin)
    with pytest.raises(PackageError, match="install the full package"):
        school_engine.installer.install(built_file(admin, b.delta_file))
    assert school_engine.installer.installed() == {}


def rewrite(source: Path, target: Path, change) -> Path:
    """Copy a package, letting `change(name, data) -> [(name, data), ...]` alter members."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for info in original.infolist():
            for name, data in change(info.filename, original.read(info.filename)):
                copy.writestr(name, data, zipfile.ZIP_DEFLATED)
    return target


def write(target: Path, data: bytes) -> Path:
    target.write_bytes(data)
    return target


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


BAD_PACKAGES = {
    "flipped byte": lambda p, t: write(t, flip(p.read_bytes(), 300)),
    "truncated": lambda p, t: write(t, p.read_bytes()[: p.stat().st_size // 2]),
    "tampered text": lambda p, t: rewrite(
        p, t, lambda n, d: [(n, d.replace(b"topologi", b"TOPOLOGI") if n == "chunks.jsonl" else d)]
    ),
    "zip-slip member": lambda p, t: rewrite(
        p,
        t,
        lambda n, d: [(n, d)] + ([("../../evil.sh", b"rm -rf /")] if n == "vectors.f32" else []),
    ),
    "absolute member": lambda p, t: rewrite(
        p, t, lambda n, d: [("/etc/cron.d/x" if n == "vectors.f32" else n, d)]
    ),
    "member-count bomb": lambda p, t: rewrite(
        p, t, lambda n, d: [(n, d)] + [(f"x{i}", b"") for i in range(100)] * (n == "vectors.f32")
    ),
    "size bomb": lambda p, t: rewrite(
        p, t, lambda n, d: [(n, d + b"\n" * 50_000_000 if n == "chunks.jsonl" else d)]
    ),
    "not a package": lambda p, t: write(t, b"%PDF-1.7 renamed"),
}


@pytest.mark.parametrize("kind", BAD_PACKAGES)
def test_bad_packages_are_refused_and_nothing_is_installed(admin, tmp_path, kind):
    built = admin.builder.build("informatika", "kelas_10")
    bad = BAD_PACKAGES[kind](built_file(admin, built.file), tmp_path / "bad.vkp")
    school_engine = school(tmp_path, admin)

    with pytest.raises(PackageError):
        school_engine.installer.install(bad)

    assert school_engine.installer.installed() == {}
    assert [c for c in school_engine.store.collections() if c.vkp_version] == []


def test_a_package_signed_by_an_unknown_key_is_refused(admin, tmp_path):
    built = admin.builder.build("informatika", "kelas_10")
    keygen(tmp_path / "stranger")
    stranger = Settings(
        NEXUS_DATA_DIR=tmp_path / "x",
        VKP_TRUSTED_KEYS=str(tmp_path / "stranger" / "vkp_signing.pub"),
    )
    with pytest.raises(PackageError, match="signature"):
        build_engine(stranger, embedder=FakeEmbedder()).installer.install(
            built_file(admin, built.file)
        )


class FlakyHandler(RangeRequestHandler):
    """Cuts the first download of each package off half-way, like a thin link dropping."""

    cut: set[str] = set()
    ranges: list[str] = []

    def copyfile(self, source, outputfile):
        if self.headers.get("Range"):
            FlakyHandler.ranges.append(self.headers["Range"])
        if self.path.endswith(".vkp") and self.path not in FlakyHandler.cut:
            FlakyHandler.cut.add(self.path)
            data = source.read()
            outputfile.write(data[: len(data) // 2])
            outputfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        super().copyfile(source, outputfile)


@pytest.fixture
def http_catalogue(admin):
    folder = admin.settings.vkp_dir / "publish"
    folder.mkdir(parents=True, exist_ok=True)
    FlakyHandler.cut, FlakyHandler.ranges = set(), []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: FlakyHandler(*a, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pull_over_http_resumes_an_interrupted_download_and_prefers_deltas(
    admin, tmp_path, http_catalogue
):
    catalogue = CataloguePublisher(admin.settings)
    catalogue.publish(admin.builder.build("informatika", "kelas_10"), "informatika", "kelas_10")
    school_engine = school(tmp_path, admin)

    [first] = pull(school_engine.settings, school_engine.installer, Source(http_catalogue))

    assert first == first | {"action": "installed", "via": "full", "version": "1.0.0"}
    assert FlakyHandler.ranges and FlakyHandler.ranges[0].startswith(
        "bytes="
    )  # resumed, not restarted
    assert results(school_engine) == results(admin)

    change_one_lesson(admin)
    catalogue.publish(admin.builder.build("informatika", "kelas_10"), "informatika", "kelas_10")
    [second] = pull(school_engine.settings, school_engine.installer, Source(http_catalogue))
    assert second == second | {
        "action": "installed",
        "via": "delta",
        "from": "1.0.0",
        "version": "1.1.0",
    }
    index = catalogue.payload()
    assert second["bytes"] == index["packages"]["kelas_10__informatika"]["deltas"][0]["size"]
    [third] = pull(school_engine.settings, school_engine.installer, Source(http_catalogue))
    assert third["action"] == "up to date"
    assert list((school_engine.settings.vkp_dir / "downloads").glob("*")) == []


def test_pull_from_a_usb_folder_and_a_catalogue_naming_a_missing_file(admin, tmp_path):
    CataloguePublisher(admin.settings).publish(
        admin.builder.build("informatika", "kelas_10"), "informatika", "kelas_10"
    )
    usb = admin.settings.vkp_dir / "publish"
    school_engine = school(tmp_path, admin)
    (usb / "vkp" / "kelas_10__informatika__v1.0.0.vkp").rename(tmp_path / "moved.vkp")

    [missing] = pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    assert missing["action"] == "failed" and "does not exist" in missing["error"]
    assert school_engine.installer.installed() == {}

    (tmp_path / "moved.vkp").rename(usb / "vkp" / "kelas_10__informatika__v1.0.0.vkp")
    [done] = pull(school_engine.settings, school_engine.installer, Source(str(usb)))
    assert done["action"] == "installed"
    with pytest.raises(TransferError, match="no catalogue"):
        Source(str(tmp_path / "empty")).read_index()


def test_catalogue_keeps_only_the_newest_versions(admin):
    admin.settings.vkp_keep_versions = 2
    catalogue = CataloguePublisher(admin.settings)
    for topic in ("satu", "dua", "tiga"):
        path = admin.settings.inbox_dir / "kelas_10" / "informatika" / "extra.pdf"
        pdfs.text_pdf(path, [f"Materi tambahan {topic}."])
        admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)
        catalogue.publish(admin.builder.build("informatika", "kelas_10"), "informatika", "kelas_10")
    package = catalogue.index()["packages"]["kelas_10__informatika"]
    assert [v["version"] for v in package["versions"]] == ["1.1.0", "1.2.0"] and package[
        "latest"
    ] == "1.2.0"
    assert [(d["from"], d["to"]) for d in package["deltas"]] == [("1.1.0", "1.2.0")]
    files = sorted(p.name for p in (admin.settings.vkp_dir / "publish" / "vkp").glob("*.vkp"))
    assert files == [
        "kelas_10__informatika__v1.1.0.vkp",
        "kelas_10__informatika__v1.1.0_to_v1.2.0.vkp",
        "kelas_10__informatika__v1.2.0.vkp",
    ]


def vkp(*args: str, env: dict, check: bool = True):
    return nexus("vkp", *args, env=env, check=check)


@pytest.mark.slow
def test_cli_build_verify_install_list_rollback(tmp_path, bedrock, monkeypatch):
    admin_env = {"NEXUS_DATA_DIR": str(tmp_path / "admin")}
    inbox = tmp_path / "admin" / "inbox" / "kelas_10" / "informatika"
    pdfs.text_pdf(inbox / "a.pdf", ["Algoritma adalah urutan langkah."])

    def ingest() -> None:
        nexus("ingest", str(tmp_path / "admin" / "inbox"), env=admin_env)

    ingest()
    assert "signing key" in vkp("keygen", env=admin_env).stdout
    first = json.loads(
        vkp("build", "informatika", "kelas_10", "--publish", "--json", env=admin_env).stdout
    )
    assert (
        first["version"] == "1.0.0"
        and first["file"] == "kelas_10__informatika__v1.0.0.vkp"
        and first["size"] > 0
    )
    refused = vkp("build", "informatika", "kelas_10", env=admin_env, check=False)
    assert refused.returncode == 1 and "nothing changed" in refused.stderr
    pdfs.text_pdf(inbox / "b.pdf", ["Jaringan komputer."])
    ingest()
    second = json.loads(
        vkp("build", "informatika", "kelas_10", "--publish", "--json", env=admin_env).stdout
    )
    assert second["version"] == "1.1.0" and second["delta_size"] < second["size"]

    school_env = {
        "NEXUS_DATA_DIR": str(tmp_path / "school"),
        "VKP_TRUSTED_KEYS": str(tmp_path / "admin" / "keys" / "vkp_signing.pub"),
    }
    built = tmp_path / "admin" / "vkp" / "built"
    assert "signature valid" in vkp("verify", str(built / first["file"]), env=school_env).stdout
    installed = vkp("install", str(built / first["file"]), env=school_env)
    assert "warning" not in installed.stderr
    # a school running another model is told that only keyword search finds the package
    other_model = vkp("list", env=school_env | {"EMBEDDING_STRATEGY": "local"})
    assert "kelas_10__informatika was built with the embedding model titan" in other_model.stderr
    assert "only keyword search" in other_model.stderr
    assert "EMBEDDING_STRATEGY=bedrock or hybrid" in other_model.stderr  # how to fix it
    # settings this command does not need cannot fail it
    broken = {"LOCAL_EMBEDDING_MODEL": "use-multilingual-v3", "LOCAL_EMBEDDING_BACKEND": "onnx"}
    listed = vkp("list", env=school_env | {"EMBEDDING_STRATEGY": "local"} | broken)
    assert "kelas_10__informatika" in listed.stdout and "could not compare" in listed.stderr
    vkp("pull", "--source", str(tmp_path / "admin" / "vkp" / "publish"), env=school_env)
    listed = json.loads(vkp("list", "--json", env=school_env).stdout)
    assert listed["kelas_10__informatika"]["version"] == "1.1.0"
    assert "back at v1.0.0" in vkp("rollback", "informatika", "kelas_10", env=school_env).stdout
    stranger = vkp(
        "install",
        str(built / first["file"]),
        env=school_env | {"VKP_TRUSTED_KEYS": str(tmp_path / "none.pub")},
        check=False,
    )
    assert (
        stranger.returncode == 1 and "signature does not match any trusted key" in stranger.stderr
    )


def test_publishing_to_s3_puts_packages_and_catalogue_in_the_bucket(admin, aws, monkeypatch):
    import boto3

    from engine.cloud.admin import setup

    setup(Settings())
    publisher = build_engine(Settings(NEXUS_DATA_DIR=admin.settings.data_dir)).publisher
    built = admin.builder.build("informatika", "kelas_10")
    result = CataloguePublisher(admin.settings, publisher).publish(built, "informatika", "kelas_10")
    assert result["s3"]["pending"] == 0
    keys = {
        o["Key"]
        for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(
            Bucket="openclass-nexus-ai"
        )["Contents"]
    }
    assert keys == {"vkp/kelas_10__informatika__v1.0.0.vkp", "vkp/index.json"}


def test_every_single_byte_flip_is_refused_or_changes_nothing(admin, tmp_path):
    """Flip each byte of a package in turn: it is refused with a PackageError, or (for zip
    bookkeeping bytes such as timestamps) it reads back exactly the signed content."""
    from engine.vkp.keys import trusted_keys
    from engine.vkp.package import read_package

    pdfs.text_pdf(admin.settings.inbox_dir / "kelas_9" / "ipa" / "kecil.pdf", ["Energi kinetik."])
    admin.ingestor.run([admin.settings.inbox_dir], admin.settings.inbox_dir)
    built = admin.builder.build("ipa", "kelas_9")
    original_path = built_file(admin, built.file)
    keys = trusted_keys(admin.settings)
    original = read_package(original_path, keys)
    data = original_path.read_bytes()
    bad = tmp_path / "flipped.vkp"
    refused = 0
    for at in range(len(data)):
        bad.write_bytes(flip(data, at))
        try:
            package = read_package(bad, keys)
        except PackageError:
            refused += 1
            continue
        assert package.manifest_bytes == original.manifest_bytes
        assert [(c.id, c.text, c.metadata, c.vector) for c in package.chunks] == [
            (c.id, c.text, c.metadata, c.vector) for c in original.chunks
        ]
    assert refused > 0.85 * len(data)
