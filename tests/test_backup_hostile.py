"""Backups from places we do not control: planted paths, links, special files, lying manifests.

Whoever can write to a backup folder or bucket is the attacker here; only the data dir is ours.
Every refusal must leave the data dir (and everything outside it) as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import boto3
import pytest

from engine.app import build_engine
from engine.backup import BackupError, restore
from engine.backup.runs import run_backup
from engine.backup.staging import check_manifest, safe_relative
from engine.cli.main import main
from engine.settings import Settings
from engine.vkp.keys import keygen
from tests.support import pdfs

BUCKET = "openclass-nexus-ai"


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` with its sha256 (what a user would compare)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def rewrite_manifest(folder: Path) -> None:
    """What an attacker with write access does after tampering: a manifest that matches."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = {
        p.relative_to(folder).as_posix(): {
            "size": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        }
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != "manifest.json"
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """tempfile's folder inside the test's tmp dir, so leftovers and escapes can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def installed(engine, inbox, settings):
    """A small installation: one ingested PDF, a signing key pair."""
    pdfs.text_pdf(
        inbox / "kelas_10" / "biologi" / "daun.pdf", pdfs.lesson_pages("fotosintesis daun", 2)
    )
    engine.ingestor.run([inbox], inbox)
    keygen(settings.data_dir / "keys")
    return engine


@pytest.fixture
def backup(installed, tmp_path) -> Path:
    return Path(run_backup(build_engine(Settings()), str(tmp_path / "backups"))["location"])


# --- names and manifests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "inbox/../../x",
        "/etc/passwd",
        "inbox//x",
        "inbox/./x",
        "inbox/",
        "",
        ".",
        "inbox\\..\\..\\x",
        "inbox/a\x00b",
        "inbox/\udcff",
        "inbox/" + "a" * 256,
    ],
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(BackupError):
        safe_relative(name)


def test_plain_names_pass():
    assert str(safe_relative("inbox/kelas_10/biologi/daun bab 1.pdf")).endswith("bab 1.pdf")


def _manifest(files: dict, collections: int = 0) -> bytes:
    entry = {"size": 1, "sha256": "0" * 64}
    return json.dumps(
        {
            "format": 1,
            "host": "h",
            "created_at": "t",
            "inbox": "/x/inbox",
            "collections": collections,
            "files": {name: entry for name in files},
        }
    ).encode()


@pytest.mark.parametrize(
    ("files", "collections", "message"),
    [
        ({}, 0, "no files"),
        ({"inbox/a.pdf": 1}, 0, "nexus.db"),
        ({"nexus.db": 1, "chroma/c/meta.json": 1, "chroma/c/chunks.jsonl": 1}, 1, "lacks"),
        ({"nexus.db": 1}, 1, "collection"),
        ({"nexus.db": 1, "etc/cron.d/evil": 1}, 0, "not part of a backup"),
        ({"nexus.db": 1, "keys/a/b": 1}, 0, "not part of a backup"),
        ({"nexus.db": 1, "manifest.json": 1}, 0, "itself"),
        ({"nexus.db": 1, "inbox/a": 1, "inbox/a/b": 1}, 0, "file and a folder"),
        ({"nexus.db": 1, "inbox/../../x": 1}, 0, "unsafe"),
    ],
)
def test_a_manifest_must_describe_a_whole_backup(files, collections, message):
    with pytest.raises(BackupError, match=message):
        check_manifest(_manifest(files, collections))


def test_an_empty_manifest_is_not_a_backup(backup, tmp_path, private_tmp):
    for path in sorted(backup.rglob("*"), reverse=True):
        if path.name != "manifest.json":
            path.unlink() if path.is_file() else path.rmdir()
    rewrite_manifest(backup)
    target = Settings(NEXUS_DATA_DIR=tmp_path / "target")
    with pytest.raises(BackupError, match="no files"):
        restore(backup, target)
    assert not target.data_dir.exists()
    assert not list(private_tmp.iterdir())


# --- folders: links and special files -----------------------------------------------------------


def test_a_linked_folder_in_a_backup_is_refused_not_followed(backup, tmp_path, private_tmp):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "shadow").write_text("root:secret\n")
    (backup / "inbox" / "kelas_10" / "linked").symlink_to(outside, target_is_directory=True)
    target = Settings(NEXUS_DATA_DIR=tmp_path / "target")

    with pytest.raises(BackupError, match=r"inbox/kelas_10/linked .*symbolic link"):
        restore(backup, target)
    assert not target.data_dir.exists()
    assert not list(private_tmp.iterdir())


def test_a_linked_file_is_refused_even_with_the_right_checksum(backup, tmp_path):
    listed = next(backup.glob("inbox/**/*.pdf"))
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(listed.read_bytes())
    listed.unlink()
    listed.symlink_to(outside)
    target = Settings(NEXUS_DATA_DIR=tmp_path / "target")
    with pytest.raises(BackupError, match="symbolic link"):
        restore(backup, target)
    assert not target.data_dir.exists()


def test_a_fifo_in_a_backup_is_refused(backup, tmp_path):
    os.mkfifo(backup / "text" / "pipe")
    target = Settings(NEXUS_DATA_DIR=tmp_path / "target")
    with pytest.raises(BackupError, match=r"text/pipe .*FIFO"):
        restore(backup, target)
    assert not target.data_dir.exists()


def test_a_rewritten_backup_with_a_damaged_database_changes_nothing(backup, settings):
    (backup / "nexus.db").write_bytes(b"not a database at all" * 100)
    (backup / "inbox" / "planted.pdf").write_bytes(b"%PDF-1.4 planted")
    rewrite_manifest(backup)
    before = tree(settings.data_dir)

    with pytest.raises(BackupError, match="SQLite"):
        restore(backup, settings, force=True)
    assert tree(settings.data_dir) == before


def test_restore_never_writes_through_a_link_out_of_the_data_dir(backup, settings, tmp_path):
    outside = tmp_path / "outside-text"
    outside.mkdir()
    text = settings.data_dir / "text"
    if text.exists():
        import shutil

        shutil.rmtree(text)
    text.symlink_to(outside, target_is_directory=True)
    before = tree(settings.data_dir)

    with pytest.raises(BackupError, match="outside"):
        restore(backup, settings, force=True)
    assert list(outside.iterdir()) == []
    assert tree(settings.data_dir) == before  # refused before anything was written


# --- keys -----------------------------------------------------------------------------------


def _private_keys(keys: Path) -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    keys_ = {
        "cloudfront_private_key.pem": rsa_key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
        "id_ed25519": ed_key.private_bytes(
            pem, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ),
        "tls.crt.bak": ec_key.private_bytes(pem, pkcs8, serialization.NoEncryption()),
        "old.pub": ec_key.private_bytes(  # the name lies; the content decides
            pem, pkcs8, serialization.BestAvailableEncryption(b"pw")
        ),
        "putty.ppk": b"PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAA\n",
        "aws_credentials": b"[default]\naws_secret_access_key = abc\n",
        "both.pub": ed_key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        + ed_key.private_bytes(pem, pkcs8, serialization.NoEncryption()),
    }
    publics = {
        "school.pem": rsa_key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "admin.pub": ed_key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }
    for name, data in (keys_ | publics).items():
        (keys / name).write_bytes(data)
    return keys_


def test_no_private_key_leaves_without_include_secrets(installed, settings, tmp_path):
    secrets = _private_keys(settings.data_dir / "keys")

    folder = Path(run_backup(build_engine(Settings()), str(tmp_path / "b"))["location"])

    assert sorted(p.name for p in (folder / "keys").iterdir()) == [
        "admin.pub",
        "school.pem",
        "vkp_signing.pub",
    ]
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert b"PRIVATE KEY" not in everything
    assert not any(data in everything for data in secrets.values())

    with_secrets = Path(
        run_backup(build_engine(Settings()), str(tmp_path / "s"), include_secrets=True)["location"]
    )
    names = {p.name for p in (with_secrets / "keys").iterdir()}
    assert set(secrets) | {"vkp_signing.key", "vkp_signing.pub"} <= names
    restored = Settings(NEXUS_DATA_DIR=tmp_path / "restored")
    restore(with_secrets, restored, trust_keys=True)  # the admin's own backup
    key = restored.data_dir / "keys" / "cloudfront_private_key.pem"
    assert key.read_bytes() == secrets["cloudfront_private_key.pem"]
    assert key.stat().st_mode & 0o077 == 0


# --- file-system errors ------------------------------------------------------------------------


def test_backup_to_a_folder_that_cannot_be_made_is_a_message(installed, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["backup", "--to", str(blocker / "backups")]) == 1
    err = capsys.readouterr().err
    assert "nexus backup: cannot write" in err and "Traceback" not in err


def test_a_full_disk_is_a_message_and_leaves_no_partial_backup(
    installed, tmp_path, capsys, monkeypatch
):
    import errno
    import shutil

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[1]))

    monkeypatch.setattr(shutil, "copy2", full)
    assert main(["backup", "--to", str(tmp_path / "backups")]) == 1
    assert "the disk is full" in capsys.readouterr().err
    assert list((tmp_path / "backups").iterdir()) == []


# --- S3: keys are paths from outside -----------------------------------------------------------


def _bucket_backup(monkeypatch) -> str:
    monkeypatch.setenv("S3_BUCKET_NAME", BUCKET)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    return run_backup(build_engine(Settings()), "s3")["location"]


def _put(url: str, relative: str, body: bytes) -> None:
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=BUCKET, Key=prefix + relative, Body=body
    )


@pytest.mark.parametrize("planted", ["../planted.txt", "inbox/../../../planted.txt", "ABS"])
def test_s3_keys_that_climb_out_are_refused_before_any_download(
    installed, tmp_path, private_tmp, monkeypatch, capsys, planted
):
    from moto import mock_aws

    with mock_aws():
        url = _bucket_backup(monkeypatch)
        if planted == "ABS":
            planted = str(tmp_path / "planted.txt")  # the key holds "//" + an absolute path
        _put(url, planted, b"owned")
        target = tmp_path / "restored"

        assert main(["restore", url, "--data-dir", str(target)]) == 1

    assert "refused" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("planted*")]
    assert not target.exists()
    assert not list(private_tmp.iterdir())  # the staging folder is gone


def test_s3_objects_must_match_the_manifest(installed, tmp_path, private_tmp, monkeypatch):
    from moto import mock_aws

    with mock_aws():
        url = _bucket_backup(monkeypatch)
        s3 = Settings()
        from engine.app import build_s3

        manager = build_s3(s3)
        target = Settings(NEXUS_DATA_DIR=tmp_path / "restored")
        prefix = url.removeprefix(f"s3://{BUCKET}/")
        client = boto3.client("s3", region_name="us-east-1")
        db = client.get_object(Bucket=BUCKET, Key=prefix + "nexus.db")["Body"].read()

        _put(url, "nexus.db", db + b"\0" * 4096)  # bigger than the manifest says
        with pytest.raises(BackupError, match="size"):
            restore(url, target, s3=manager)
        _put(url, "nexus.db", db)
        _put(url, "inbox/unlisted.pdf", b"%PDF")  # present but not listed
        with pytest.raises(BackupError, match="does not list"):
            restore(url, target, s3=manager)
        client.delete_object(Bucket=BUCKET, Key=prefix + "inbox/unlisted.pdf")
        _put(url, "manifest.json", b"{" * (33 * 2**20))  # over the manifest cap
        with pytest.raises(BackupError, match="larger than"):
            restore(url, target, s3=manager)

    assert not target.data_dir.exists()
    assert not list(private_tmp.iterdir())


@pytest.mark.slow
def test_s3_restore_over_real_http_refuses_planted_keys_then_restores(
    installed, aws, tmp_path, private_tmp, capsys
):
    boto3.client("s3", region_name="us-east-1", endpoint_url=aws).create_bucket(Bucket=BUCKET)
    before = sorted(p.name for p in Settings().inbox_dir.rglob("*.pdf"))
    url = run_backup(build_engine(Settings()), "s3")["location"]
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=aws)
    client.put_object(Bucket=BUCKET, Key=prefix + "../planted.txt", Body=b"owned")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.endswith("../planted.txt") for k in keys)  # the key reached the server as is
    target = tmp_path / "restored"

    assert main(["restore", url, "--data-dir", str(target)]) == 1
    assert "unsafe path" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("planted*")] and not target.exists()

    for key in keys:
        if "planted" in key:
            client.delete_object(Bucket=BUCKET, Key=key)
    assert main(["restore", url, "--data-dir", str(target)]) == 0
    assert sorted(p.name for p in (target / "inbox").rglob("*.pdf")) == before
    assert not list(private_tmp.iterdir())


def test_retention_ignores_planted_folders_and_links(installed, tmp_path, monkeypatch):
    parent = tmp_path / "backups"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    for planted in ("zzz-not-a-backup", "~latest"):
        (parent / planted).mkdir(parents=True)
        (parent / planted / "manifest.json").write_text("{}")
    (parent / "29991231T000000Z").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("BACKUP_KEEP", "1")

    result = run_backup(build_engine(Settings()), str(parent))

    assert Path(result["location"]).is_dir()  # the new backup is not pushed out by planted ones
    assert (outside / "manifest.json").exists()


# --- the database's schema and trusted rows ---------------------------------------------------


def tamper(backup: Path, *statements: str) -> None:
    import sqlite3

    with sqlite3.connect(backup / "nexus.db") as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    rewrite_manifest(backup)


def test_a_table_recreated_with_a_poisoned_constraint_is_refused(backup, settings):
    """Same name, same columns, one CHECK more: every later install would fail."""
    from engine.db import MIGRATIONS

    original = next(m for m in MIGRATIONS if "CREATE TABLE vkp_installed" in m)
    poisoned = original.replace(
        "installed_at TEXT NOT NULL", "installed_at TEXT NOT NULL, CHECK (version = 'never')"
    )
    tamper(backup, "DROP TABLE vkp_installed", poisoned)
    before = tree(settings.data_dir)
    with pytest.raises(BackupError, match="schema.*vkp_installed"):
        restore(backup, settings, force=True)
    assert tree(settings.data_dir) == before


@pytest.mark.parametrize(
    "change",
    [
        "CREATE INDEX planted ON documents (file_name)",
        "ALTER TABLE documents ADD COLUMN extra TEXT DEFAULT 'x'",
        "PRAGMA user_version = 99",
    ],
)
def test_any_other_schema_change_is_refused(backup, settings, change):
    tamper(backup, change)
    with pytest.raises(BackupError, match="schema"):
        restore(backup, settings, force=True)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "INSERT INTO vkp_installed VALUES ('kelas_10__ipa', 'ipa', 'kelas_10', 'never',"
            " 'c', NULL, NULL, 'now')",
            "MAJOR.MINOR.PATCH",
        ),
        (
            "INSERT INTO vkp_installed VALUES ('lain', 'ipa', 'kelas_10', '1.0.0',"
            " 'c', NULL, NULL, 'now')",
            "not named for",
        ),
        (
            "INSERT INTO documents (path, grade, subject, file_name, sha256, size, status,"
            " updated_at) VALUES ('kelas_10/ipa/../../../keys/vkp_signing.key', 'kelas_10',"
            " 'ipa', 'x.pdf', 'x', 1, 'ingested', 'now')",
            "climbs",
        ),
    ],
)
def test_rows_the_engine_trusts_later_are_checked(backup, settings, row, message):
    tamper(backup, row)
    with pytest.raises(BackupError, match=message):
        restore(backup, settings, force=True)


def test_an_older_engines_database_is_compared_with_the_schema_of_its_version(tmp_path):
    import sqlite3

    from engine.backup.database import _check_schema
    from engine.db import MIGRATIONS, migrate

    older = tmp_path / "older.db"
    conn = sqlite3.connect(older, isolation_level=None)
    migrate(conn, upto=6)
    conn.close()
    _check_schema(older, tmp_path)  # accepted: exactly what version 6 made
    conn = sqlite3.connect(older, isolation_level=None)
    conn.execute("CREATE TABLE lexical_postings (x)")  # a table only version 7 makes
    conn.close()
    with pytest.raises(BackupError, match="schema"):
        _check_schema(older, tmp_path)
    assert len(MIGRATIONS) > 6


@pytest.mark.parametrize("name", ["sqlitex_freeze", "SQLITEXwipe", "sqlite_freeze"])
def test_a_trigger_is_refused_whatever_its_name(backup, settings, name):
    """`NOT LIKE 'sqlite_%'` would let `sqlitex_…` through (`_` matches any character), and
    writable_schema can plant an exact `sqlite_` name."""
    import sqlite3

    trigger = (
        f"CREATE TRIGGER {name} BEFORE INSERT ON vkp_installed"
        " BEGIN SELECT RAISE(ABORT, 'frozen by backup'); END"
    )
    with sqlite3.connect(backup / "nexus.db") as conn:
        if name.startswith("sqlite_"):
            conn.execute("PRAGMA writable_schema = ON")
            conn.execute(
                "INSERT INTO sqlite_master VALUES ('trigger', ?, 'vkp_installed', 0, ?)",
                (name, trigger),
            )
        else:
            conn.execute(trigger)
    conn.close()
    rewrite_manifest(backup)
    before = tree(settings.data_dir)
    with pytest.raises(BackupError):
        restore(backup, settings, force=True)
    assert tree(settings.data_dir) == before


def test_the_embedding_model_record_travels_with_the_backup_but_never_a_path(
    installed, settings, tmp_path
):
    """A restored server searches with the model its collections were built with; a record
    naming a folder (any model files, pickles included) is not restored."""
    from engine.embed.choice import record_model, recorded_model

    record_model(settings.data_dir, "use-multilingual-v3")
    folder = Path(run_backup(build_engine(Settings()), str(tmp_path / "backups"))["location"])
    restored = Settings(NEXUS_DATA_DIR=str(tmp_path / "restored"))
    restore(folder, restored)
    assert recorded_model(restored.data_dir) == "use-multilingual-v3"

    # a path, in the model field or in any other field the engine may read later
    (folder / "embedding-model.json").write_text(
        '{"local_embedding_model": "use-multilingual-v3", "previous": "/tmp/evil"}'
    )
    rewrite_manifest(folder)
    again = Settings(NEXUS_DATA_DIR=str(tmp_path / "again"))
    restore(folder, again)
    assert "/tmp/evil" not in (again.data_dir / "embedding-model.json").read_text()
    (folder / "embedding-model.json").write_text('{"local_embedding_model": "/tmp/evil"}')
    rewrite_manifest(folder)
    elsewhere = Settings(NEXUS_DATA_DIR=str(tmp_path / "elsewhere"))
    restore(folder, elsewhere)
    assert recorded_model(elsewhere.data_dir) != "/tmp/evil"  # the engine picks its own

    # an older backup, without a record, restored over a data dir that has one: the target's
    # record does not stay to name a model the restored collections were not built with
    (folder / "embedding-model.json").unlink()
    rewrite_manifest(folder)
    record_model(elsewhere.data_dir, "use-e5-ensemble")
    restore(folder, elsewhere, force=True)
    assert recorded_model(elsewhere.data_dir) != "use-e5-ensemble"

    (folder / "embedding-model.json").write_text("[1, 2")
    rewrite_manifest(folder)
    with pytest.raises(BackupError, match="model record"):
        restore(folder, Settings(NEXUS_DATA_DIR=str(tmp_path / "third")))


def test_a_backups_template_counts_are_counted_again_not_trusted(backup, settings):
    """The counts beside the BM25 rows are derived data: a backup that inflates them would
    make a subject's own text count as template and sink it in every search."""
    import sqlite3

    def counts(path: Path) -> list:
        with sqlite3.connect(path) as conn:
            return sorted(conn.execute("SELECT * FROM lexical_pieces"))

    honest = counts(settings.data_dir / "nexus.db")  # what the backup was made from
    assert honest
    tamper(backup, "UPDATE lexical_pieces SET documents = documents + 1000")
    restore(backup, settings, force=True)
    assert counts(settings.data_dir / "nexus.db") == honest
