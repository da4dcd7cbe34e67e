"""Backup and restore: a consistent snapshot of a running engine comes back whole elsewhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.app import build_engine
from engine.backup import BackupError, restore, verify
from engine.backup.runs import run_backup
from engine.settings import Settings
from engine.vkp.keys import keygen
from tests.support import pdfs
from tests.support.cli import nexus

QUESTIONS = ["topologi jaringan", "fotosintesis daun", "hukum newton gerak"]


def state(settings: Settings) -> dict:
    engine = build_engine(settings)
    return {
        "search": [
            [(h.source, h.pages, h.text, h.score) for h in engine.searcher.search(q, k=3)]
            for q in QUESTIONS
        ],
        "jobs": [(j.job_id, j.status, j.total_chunks) for j in engine.tracker.list_jobs(100)],
        "packages": {k: v.version for k, v in engine.installer.installed().items()},
        "documents": sorted((Path(d.path).name, d.sha256) for d in engine.catalog.all()),
    }


@pytest.fixture
def original(bedrock, inbox, settings):
    for name, topic in (
        ("jaringan", "topologi jaringan bintang"),
        ("biologi", "fotosintesis daun"),
        ("fisika", "hukum newton gerak"),
    ):
        pdfs.text_pdf(inbox / "kelas_10" / name / f"{name}.pdf", pdfs.lesson_pages(topic, 3))
    engine = build_engine(Settings())
    engine.ingestor.run([inbox], inbox)
    keygen(settings.data_dir / "keys")
    built = engine.builder.build("jaringan", "kelas_10")
    engine.installer.install(settings.vkp_dir / "built" / built.file)
    return engine


@pytest.mark.slow
def test_backup_of_a_running_engine_restores_whole_on_a_fresh_dir(
    original, inbox, bedrock, tmp_path, monkeypatch
):
    # a slow ingest is running when the backup starts
    bedrock.latency_s = 0.05
    monkeypatch.setenv("BEDROCK_CONCURRENCY", "1")
    pdfs.text_pdf(
        inbox / "kelas_10" / "sejarah" / "majapahit.pdf",
        pdfs.lesson_pages("kerajaan majapahit", 6, 20),
    )
    ingest = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (
        not [j for j in original.tracker.list_jobs(5) if j.status == "running"]
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert ingest.poll() is None, "the ingest finished before the backup started"

    result = run_backup(
        build_engine(Settings()), str(tmp_path / "backups")
    )  # waits for the running job

    assert ingest.wait(timeout=120) == 0
    folder = Path(result["location"])
    manifest = verify(folder)
    assert manifest["chunks"] == result["chunks"] > 0
    before = state(Settings())
    assert (
        before["jobs"][0][1] == "completed"
    )  # the snapshot holds the finished job, not half of it

    fresh = Settings(NEXUS_DATA_DIR=tmp_path / "new-machine")
    restore(folder, fresh)

    after = state(fresh)
    assert after == before
    assert (fresh.inbox_dir / "kelas_10" / "sejarah" / "majapahit.pdf").exists()
    # the restored installation keeps working: an unchanged inbox is not re-ingested
    rescan = build_engine(fresh).ingestor.run([fresh.inbox_dir], fresh.inbox_dir)
    assert {str(f.status) for f in rescan.files} == {"skipped"}


def test_restore_refuses_a_corrupt_or_partial_backup_before_writing(original, tmp_path):
    folder = Path(run_backup(build_engine(Settings()), str(tmp_path / "backups"))["location"])
    victim = next(p for p in sorted(folder.rglob("chunks.jsonl")))
    data = bytearray(victim.read_bytes())
    data[10] ^= 1
    victim.write_bytes(bytes(data))
    target = Settings(NEXUS_DATA_DIR=tmp_path / "target")

    with pytest.raises(BackupError, match="checksum"):
        restore(folder, target)
    assert not target.data_dir.exists()

    data[10] ^= 1
    victim.write_bytes(bytes(data))
    (folder / "nexus.db").unlink()
    with pytest.raises(BackupError, match="incomplete"):
        restore(folder, target)
    (folder / "manifest.json").unlink()
    with pytest.raises(BackupError, match="no manifest"):
        restore(folder, target)
    assert not target.data_dir.exists()


def test_restore_into_a_non_empty_dir_needs_force(original, tmp_path):
    folder = Path(run_backup(build_engine(Settings()), str(tmp_path / "backups"))["location"])
    with pytest.raises(BackupError, match="not empty"):
        restore(folder, Settings())  # the original's own data dir
    restore(folder, Settings(), force=True)


def test_private_keys_only_with_include_secrets_and_retention(original, tmp_path, monkeypatch):
    clock = iter(datetime(2026, 12, 1, 8, minute, tzinfo=UTC) for minute in range(3))
    engine = build_engine(Settings())
    without = Path(run_backup(engine, str(tmp_path / "b"), now=lambda: next(clock))["location"])
    assert sorted(p.name for p in (without / "keys").iterdir()) == ["vkp_signing.pub"]
    with_secrets = Path(
        run_backup(engine, str(tmp_path / "b"), include_secrets=True, now=lambda: next(clock))[
            "location"
        ]
    )
    assert "vkp_signing.key" in {p.name for p in (with_secrets / "keys").iterdir()}
    monkeypatch.setenv("BACKUP_KEEP", "1")
    result = run_backup(build_engine(Settings()), str(tmp_path / "b"), now=lambda: next(clock))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [Path(result["location"]).name]


@pytest.mark.slow
def test_backup_to_s3_and_restore_from_it(original, aws, tmp_path):
    from engine.cloud.admin import setup

    setup(Settings())
    before = state(Settings())
    result = run_backup(build_engine(Settings()), "s3")
    assert result["location"].startswith("s3://openclass-nexus-ai/backups/")

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli.main",
            "restore",
            result["location"],
            "--data-dir",
            str(tmp_path / "restored"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert state(Settings(NEXUS_DATA_DIR=tmp_path / "restored")) == before


def test_the_running_engine_backs_up_on_its_schedule(original, tmp_path, monkeypatch):
    from engine.runtime.service import EngineService

    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "scheduled"))
    monkeypatch.setenv("BACKUP_EVERY", "1s")
    settings = Settings()  # the original's data dir, with the schedule's settings
    service = EngineService(settings, build_engine(settings))
    service.start_schedules()
    deadline = time.monotonic() + 30
    while (
        not list((tmp_path / "scheduled").glob("*/manifest.json")) and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    service.stop()
    [backup] = list((tmp_path / "scheduled").glob("*/manifest.json"))[:1]
    assert verify(backup.parent)["chunks"] > 0


def test_keys_are_restored_only_when_the_admin_trusts_the_backup(original, tmp_path):
    """A backup folder is not trusted: a key found there would become a trusted package
    signer, so restore leaves keys/ out (and says which) unless asked with trust_keys."""
    folder = Path(run_backup(build_engine(Settings()), str(tmp_path / "backups"))["location"])
    planted = folder / "keys" / "vkp_signing.pub"
    assert planted.exists()

    cautious = Settings(NEXUS_DATA_DIR=tmp_path / "cautious")
    manifest = restore(folder, cautious)
    assert [k["name"] for k in manifest["skipped_keys"]] == ["keys/vkp_signing.pub"]
    assert not (cautious.data_dir / "keys" / "vkp_signing.pub").exists()

    proc = nexus("restore", str(folder), env={"NEXUS_DATA_DIR": str(tmp_path / "cli")}, timeout=300)
    assert "--trust-keys" in proc.stderr and "keys/vkp_signing.pub" in proc.stderr

    trusting = Settings(NEXUS_DATA_DIR=tmp_path / "trusting")
    assert restore(folder, trusting, trust_keys=True)["skipped_keys"] == []
    assert (trusting.data_dir / "keys" / "vkp_signing.pub").read_bytes() == planted.read_bytes()


def test_backup_list_and_restore_from_a_target_folder_take_the_newest(original, tmp_path):
    """`nexus backup --to FOLDER` makes timestamped backups; `restore FOLDER` picks the
    newest complete one instead of saying "not a backup"."""
    target = tmp_path / "usb"
    first = Path(run_backup(build_engine(Settings()), str(target))["location"])
    newest = target / "29991231T235959Z"  # a later backup, as the clock would name it
    shutil.copytree(first, newest)
    (target / "30000101T000000Z").mkdir()  # an interrupted one: no manifest

    env = {"NEXUS_DATA_DIR": str(tmp_path / "fresh")}
    listing = nexus("backup", "list", "--to", str(target), "--json", env=env)
    rows = json.loads(listing.stdout)
    assert [(r["name"], r["complete"]) for r in rows] == [
        (first.name, True),
        ("29991231T235959Z", True),
    ]
    proc = nexus("restore", str(target), env=env, timeout=300)
    assert "29991231T235959Z" in proc.stderr
    assert (tmp_path / "fresh" / "nexus.db").exists()
