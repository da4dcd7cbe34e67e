"""Every secret the engine reads is checked when loaded and written whole: an empty or damaged
link secret, salt, password hash, API key row or signing key refuses what it guards, with a
message that names the file; a crash while writing one leaves no partial file."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import stat
import time

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.api.links import check_pdf_token, pdf_token
from engine.auth import login_throttle, set_password, stored_hash
from engine.auth.api_keys import api_key_store
from engine.settings import Settings
from engine.util import SecretError, write_private
from engine.vkp.keys import keygen, private_key, trusted_keys
from tests.support import pdfs
from tests.support.cli import nexus

PASSWORD = "kunci-rahasia-123"


def forged_token(doc_id: str) -> str:
    """What anyone can compute when the link secret is empty."""
    expiry = int(time.time()) + 600
    mac = hmac.new(b"", f"pdf:{doc_id}:{expiry}".encode(), hashlib.sha256).hexdigest()
    return f"{expiry}.{mac}"


def test_an_empty_link_secret_refuses_links_instead_of_accepting_forged_ones(engine, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab1.pdf", ["Fotosintesis di daun."])
    engine.ingestor.run([inbox], inbox)
    keys = engine.settings.data_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "pdf_links.secret").write_bytes(b"")  # a first write that never happened
    client = TestClient(create_app(engine))
    from engine.api.documents import document_id

    [document] = engine.catalog.all()
    doc_id = document_id(document)
    answer = client.get(f"/v1/documents/{doc_id}/pdf?t={forged_token(doc_id)}")
    assert answer.status_code == 503
    assert "pdf_links.secret" in answer.json()["detail"]
    with pytest.raises(SecretError, match="link secret"):
        check_pdf_token(keys, doc_id, forged_token(doc_id))
    # a short secret, one of zeros (or a sparse file left by a crash) and a folder are
    # refused the same way; deleting it makes a new, whole one
    secret = keys / "pdf_links.secret"
    for damaged in (b"abc", b"\0" * 32, b"ab" * 16):
        secret.write_bytes(damaged)
        with pytest.raises(SecretError):
            pdf_token(keys, doc_id)
    secret.unlink()
    with secret.open("wb") as fh:
        fh.truncate(32)  # sparse: size set, nothing written
    with pytest.raises(SecretError):
        check_pdf_token(keys, doc_id, forged_token(doc_id))
    secret.unlink()
    secret.mkdir()
    assert client.get(f"/v1/documents/{doc_id}/pdf?t={forged_token(doc_id)}").status_code == 503
    secret.rmdir()
    token = pdf_token(keys, doc_id)
    assert len((keys / "pdf_links.secret").read_bytes()) == 32
    assert check_pdf_token(keys, doc_id, token) and not check_pdf_token(
        keys, doc_id, forged_token(doc_id)
    )


def test_a_crash_while_writing_a_secret_leaves_no_empty_file(tmp_path, monkeypatch):
    target = tmp_path / "keys" / "pdf_links.secret"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_private(target, b"x" * 32, exclusive=True)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left either
    monkeypatch.undo()
    assert write_private(target, b"y" * 32, exclusive=True)
    assert target.read_bytes() == b"y" * 32
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not write_private(target, b"z" * 32, exclusive=True)  # the first writer wins
    assert target.read_bytes() == b"y" * 32


def test_a_damaged_telemetry_salt_is_refused_not_used(engine):
    telemetry = engine.telemetry
    good = telemetry.school_id_hash()
    salt = telemetry.salt_file
    assert len(salt.read_bytes()) == 64
    for damaged in (
        b"",
        b"0" * 10,
        b"not hex at all, but sixty-four characters long, padded out....",
    ):
        salt.write_bytes(damaged)
        with pytest.raises(SecretError, match="telemetry salt"):
            telemetry.school_id_hash()
    salt.unlink()
    assert telemetry.school_id_hash() != good  # a new salt, whole


def test_an_empty_or_linked_password_hash_refuses_every_login(settings, tmp_path):
    set_password(settings, PASSWORD)
    hash_file = settings.data_dir / "keys" / "admin_password"
    throttle = login_throttle(settings)
    assert throttle.login("local", PASSWORD, stored_hash(settings)).ok

    hash_file.write_text("")
    result = throttle.login("local", PASSWORD, stored_hash(settings))
    assert not result.ok and result.malformed

    elsewhere = tmp_path / "planted"
    elsewhere.write_text(hash_file.read_text())
    hash_file.unlink()
    hash_file.symlink_to(elsewhere)
    assert stored_hash(settings) == ""  # not followed
    assert not throttle.login("local", PASSWORD, stored_hash(settings)).ok


def test_a_planted_or_damaged_api_key_row_never_matches_and_never_crashes(settings):
    store = api_key_store(settings.data_dir)
    key = store.create("sekolah")
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "INSERT INTO api_keys (name, key_sha256, created_at) VALUES ('kosong', '', 'x'),"
            " ('biner', X'00ff', 'x'), ('angka', 5, 'x')"
        )
    assert store.verify(key) == "sekolah"
    assert store.verify("nxk_tebakan") is None
    assert store.verify("") is None


def test_signing_keys_are_private_from_creation_and_damaged_ones_are_refused(settings, tmp_path):
    private_path, public_path = keygen(settings.data_dir / "keys")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_key(settings) and len(trusted_keys(settings)) == 1

    good = private_path.read_bytes()
    private_path.write_bytes(b"")
    with pytest.raises(SecretError, match="signing key"):
        private_key(settings)
    private_path.write_bytes(good.replace(b"PRIVATE KEY-----\n", b"PRIVATE KEY-----\nAAAA", 1))
    with pytest.raises(SecretError, match="not an Ed25519 private key"):
        private_key(settings)
    private_path.unlink()
    (tmp_path / "outside.key").write_bytes(good)
    private_path.symlink_to(tmp_path / "outside.key")
    with pytest.raises(SecretError, match="cannot be read"):
        private_key(settings)

    public_path.write_bytes(b"")
    with pytest.raises(SecretError, match="trusted VKP key"):
        trusted_keys(settings)


def test_the_cli_names_the_damaged_secret_and_exits_non_zero(settings):
    keys = settings.data_dir / "keys"
    nexus("vkp", "keygen", env={"NEXUS_DATA_DIR": str(settings.data_dir)})
    (keys / "vkp_signing.key").write_bytes(b"")
    result = nexus(
        "vkp",
        "build",
        "ipa",
        "kelas_10",
        env={"NEXUS_DATA_DIR": str(settings.data_dir)},
        check=False,
    )
    assert result.returncode != 0
    assert "vkp_signing.key" in result.stderr and "Traceback" not in result.stderr


def test_a_link_secret_of_the_wrong_length_is_refused_too(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    keys = settings.data_dir / "keys"
    keys.mkdir(parents=True)
    (keys / "pdf_links.secret").write_bytes(b"\0" * 33)  # too long: not one of ours
    with pytest.raises(SecretError):
        pdf_token(keys, "0123456789abcdef")


def test_secrets_are_made_on_file_systems_without_hard_links(tmp_path, monkeypatch):
    """A data dir on a USB disk (vfat, exFAT) or some network mounts cannot hard-link."""
    import errno

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "keys" / "pdf_links.secret"
    assert write_private(target, b"k" * 32, exclusive=True)
    assert target.read_bytes() == b"k" * 32 and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not write_private(target, b"z" * 32, exclusive=True)  # the first writer still wins
    assert sorted(p.name for p in target.parent.iterdir()) == ["pdf_links.secret"]


def test_a_damaged_trusted_key_stops_installs_but_never_searches(engine, inbox, settings):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab1.pdf", ["Fotosintesis terjadi di daun."])
    engine.ingestor.run([inbox], inbox)
    keys = settings.data_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "ministry.pub").write_text("garbage")
    assert engine.searcher.search("fotosintesis daun", k=1)[0].source == "bab1.pdf"
    with pytest.raises(SecretError, match="ministry.pub"):
        _ = engine.installer.trusted_keys
