"""Hostile inbox entries: undecodable names, FIFOs, odd links, text bombs, bad folder names and
a PDF reader whose stdout is noisy. Each gets a clear status; the engine never hangs or stops."""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import pytest

from engine.inbox.scan import NotRegularFile, open_regular
from engine.inbox.watch import InboxWatcher, StabilityGate
from engine.jobs.base import FileStatus
from engine.paths import path_for_key, path_key
from tests.support import pdfs

BAD_NAME = os.fsdecode(b"bab\xe9.pdf")  # Latin-1 é: not UTF-8, so Python hands over "\udce9"


def ingest(engine, inbox: Path, timeout: float = 120):
    """Run a job in a thread, so that a hang fails the test instead of blocking it."""
    box: dict = {}

    def target() -> None:
        try:
            box["outcome"] = engine.ingestor.run([inbox], inbox.resolve())
        except BaseException as exc:  # reported below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the job hung"
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def by_name(results) -> dict[str, object]:
    return {Path(r.path).name: r for r in results}


def statuses(results) -> dict[str, str]:
    return {name: str(r.status) for name, r in by_name(results).items()}


def bad_name_pdf(folder: Path, text: str) -> Path:
    """A PDF whose file name is not valid UTF-8."""
    made = pdfs.text_pdf(folder / "sementara.pdf", [text])
    target = folder / BAD_NAME
    os.rename(made, target)
    return target


def chunk_texts(engine) -> dict[str, str]:
    """source → all its chunks' text."""
    texts: dict[str, str] = {}
    for col in engine.store.collections():
        for chunk in engine.store.get_chunks(col.name):
            source = chunk.metadata["source"]
            texts[source] = texts.get(source, "") + chunk.text
    return texts


# --- 1. names that are not UTF-8; one file's failure never ends a job unfinished ----------------
def test_path_keys_are_readable_and_lead_back_to_the_file(tmp_path):
    real = tmp_path / BAD_NAME
    real.write_bytes(b"x")
    key = path_key(real)
    assert key.endswith("/bab%E9.pdf") and key.encode("utf-8")
    assert path_for_key(key) == real
    assert path_key(tmp_path / "biasa 50%.pdf") == str(tmp_path / "biasa 50%.pdf")
    assert path_key("a\nb\x1b.pdf") == "a%0Ab%1B.pdf"  # no log or terminal injection


def test_a_file_name_that_is_not_utf8_is_ingested_under_a_readable_key(engine, inbox):
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "awal.pdf", ["Fotosintesis terjadi di daun."])
    bad_name_pdf(subject, "Gerak lurus beraturan dan percepatan.")
    pdfs.text_pdf(subject / "zakhir.pdf", ["Sistem tata surya."])

    outcome = ingest(engine, inbox)

    assert outcome.job.status == "completed"
    assert statuses(outcome.files) == {
        "awal.pdf": "ingested",
        "bab%E9.pdf": "ingested",
        "zakhir.pdf": "ingested",
    }
    stored = engine.tracker.job_files(outcome.job.job_id)
    assert statuses(stored) == statuses(outcome.files)
    assert engine.tracker.get_job(outcome.job.job_id).status == "completed"
    hits = engine.searcher.search("gerak lurus percepatan", k=1)
    assert hits[0].source == "bab%E9.pdf"
    # a second scan finds it unchanged: not vanished, not removed, not re-read
    again = ingest(engine, inbox)
    assert set(statuses(again.files).values()) == {"skipped"}


def test_the_cli_reports_a_bad_name_and_exits_normally(engine, inbox, monkeypatch, capsys):
    from engine.cli import ingest_cmds

    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "awal.pdf", ["Fotosintesis terjadi di daun."])
    bad_name_pdf(subject, "Gerak lurus beraturan.")
    monkeypatch.setattr(ingest_cmds, "build_engine", lambda settings: engine)

    args = argparse.Namespace(path=inbox, json=True, upload=False, grade=None, subject=None)
    assert ingest_cmds.cmd_ingest(args, engine.settings) == 0

    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    assert {Path(f["path"]).name: f["status"] for f in summary["files"]} == {
        "awal.pdf": "ingested",
        "bab%E9.pdf": "ingested",
    }


def test_a_result_that_cannot_be_saved_fails_that_file_and_the_job_finishes(engine, inbox):
    subject = inbox / "kelas_10" / "ipa"
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        pdfs.text_pdf(subject / name, [f"Isi berkas {name} tentang energi."])
    tracker = engine.ingestor.tracker
    save_file = tracker.save_file

    def flaky_save_file(job_id, result):
        if result.path.endswith("b.pdf") and result.status is FileStatus.INGESTED:
            raise RuntimeError("disk hiccup")
        save_file(job_id, result)

    tracker.save_file = flaky_save_file

    outcome = ingest(engine, inbox)

    stored = by_name(tracker.job_files(outcome.job.job_id))
    assert {n: str(r.status) for n, r in stored.items()} == {
        "a.pdf": "ingested",
        "b.pdf": "failed",
        "c.pdf": "ingested",
    }
    assert "could not be recorded" in stored["b.pdf"].reason
    job = tracker.get_job(outcome.job.job_id)
    assert (job.status, job.processed_files, job.failed_files) == ("partial", 3, 1)


def test_the_watcher_survives_a_rescan_with_a_bad_name_and_failing_batches(engine, inbox):
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "awal.pdf", ["Fotosintesis terjadi di daun."])
    bad_name_pdf(subject, "Gerak lurus beraturan.")
    root = inbox.resolve()
    batches: list[list[Path]] = []

    def on_ready(paths: list[Path]) -> None:
        batches.append(paths)
        if len(batches) == 1:
            raise RuntimeError("a batch that fails for a reason of its own")
        engine.ingestor.run(paths, root, job_type="watch")

    for attempt in range(2):  # two starts: each rescans the inbox
        watcher = InboxWatcher(root, on_ready, stable_s=0.2, poll_interval_s=0.2)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while len(batches) < attempt + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        if attempt == 0:  # the failed batch did not end the watcher: a new file is handled
            pdfs.text_pdf(subject / "baru.pdf", ["Sistem tata surya."])
            while len(engine.tracker.list_jobs()) < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
        else:
            while len(engine.tracker.list_jobs()) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert thread.is_alive()
        watcher.stop()
        thread.join(timeout=20)
        assert not thread.is_alive()

    jobs = engine.tracker.list_jobs()
    assert [j.status for j in jobs] == ["completed", "completed"]
    names = {Path(f.path).name for j in jobs for f in engine.tracker.job_files(j.job_id)}
    assert names == {"awal.pdf", "bab%E9.pdf", "baru.pdf"}
    assert engine.ingestor.catalog.get(path_key(root / "kelas_10" / "ipa" / BAD_NAME))


# --- 2. FIFOs, folders and links with PDF names -----------------------------------------------
def test_special_entries_and_links_each_get_a_status_and_never_hang(engine, inbox, tmp_path):
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "asli.pdf", ["Hukum Newton tentang gerak."])
    os.mkfifo(subject / "pipa.pdf")
    (subject / "folder.pdf").mkdir()
    os.symlink("/dev/zero", subject / "nol.pdf")
    outside = pdfs.text_pdf(tmp_path / "rahasia" / "rahasia.pdf", ["Kunci rahasia sekolah."])
    os.symlink(outside, subject / "luar.pdf")
    os.symlink(subject / "tidak_ada.pdf", subject / "putus.pdf")
    os.symlink(subject / "pipa.pdf", subject / "ke_pipa.pdf")
    os.symlink(subject / "asli.pdf", subject / "tautan.pdf")  # inside the inbox: followed
    os.symlink(outside.parent, subject / "map_luar")  # a link to a folder: reported, not walked

    outcome = ingest(engine, inbox, timeout=60)

    results = by_name(outcome.files)
    assert statuses(outcome.files) == {
        "asli.pdf": "ingested",
        "pipa.pdf": "not_a_file",
        "folder.pdf": "not_a_file",
        "nol.pdf": "outside_inbox",
        "luar.pdf": "outside_inbox",
        "putus.pdf": "not_a_file",
        "ke_pipa.pdf": "not_a_file",
        "tautan.pdf": "skipped",  # same content as asli.pdf, already ingested
        "map_luar": "outside_inbox",
    }
    assert "named pipe" in results["pipa.pdf"].reason
    assert "folder" in results["folder.pdf"].reason
    assert "outside the inbox" in results["luar.pdf"].reason
    assert "broken link" in results["putus.pdf"].reason
    assert "Kunci rahasia" not in "".join(chunk_texts(engine).values())
    stored = engine.tracker.job_files(outcome.job.job_id)
    assert statuses(stored) == statuses(outcome.files)


def test_the_watchers_scan_queues_special_entries_too(tmp_path):
    folder = tmp_path / "kelas_10" / "ipa"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipa.pdf")
    os.symlink(folder / "tidak_ada.pdf", folder / "putus.pdf")
    (folder / "folder.pdf").mkdir()
    (folder / "catatan.txt").write_text("bukan PDF")
    gate = StabilityGate(stable_s=0, clock=lambda: 0.0)
    gate.touch(tmp_path)
    assert gate.ready() == sorted(folder / n for n in ("folder.pdf", "pipa.pdf", "putus.pdf"))


def test_opening_checks_what_was_opened(tmp_path):
    os.mkfifo(tmp_path / "pipa.pdf")
    with pytest.raises(NotRegularFile, match="named pipe"):
        open_regular(tmp_path / "pipa.pdf")  # returns at once: O_NONBLOCK
    os.symlink("/etc/hostname", tmp_path / "tautan.pdf")
    with pytest.raises(OSError):
        open_regular(tmp_path / "tautan.pdf")  # O_NOFOLLOW: a swapped-in link is refused


# --- 3. text bombs -------------------------------------------------------------------------------
def test_a_text_bomb_is_refused_quickly(engine, inbox):
    bomb = pdfs.text_bomb_pdf(inbox / "kelas_10" / "ipa" / "bom.pdf")  # 130 M characters
    assert bomb.stat().st_size < 1_000_000

    started = time.monotonic()
    outcome = ingest(engine, inbox, timeout=60)

    assert time.monotonic() - started < 30
    [result] = outcome.files
    assert result.status is FileStatus.TOO_LARGE
    assert "MAX_FILE_CHARS" in result.reason and "5,000,000" in result.reason
    assert engine.store.collections() == []


def test_a_page_with_too_much_text_is_refused(engine, inbox):
    engine.settings.max_page_chars = 5_000
    pdfs.text_bomb_pdf(inbox / "kelas_10" / "ipa" / "padat.pdf", pages=3, lines=100)

    [result] = ingest(engine, inbox).files

    assert result.status is FileStatus.TOO_LARGE
    assert "page 1" in result.reason and "MAX_PAGE_CHARS" in result.reason


# --- 4. grade and subject folder names -----------------------------------------------------------
def test_folders_that_differ_only_in_spelling_never_share_a_collection(engine, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Magnet dan listrik."])
    pdfs.text_pdf(inbox / "kelas-10" / "ipa" / "b.pdf", ["Cahaya dan optik."])
    pdfs.text_pdf(inbox / "Kelas 10" / "IPA" / "c.pdf", ["Bunyi dan gelombang."])

    outcome = ingest(engine, inbox)

    results = by_name(outcome.files)
    assert statuses(outcome.files) == {
        "a.pdf": "ingested",
        "b.pdf": "bad_location",
        "c.pdf": "bad_location",
    }
    assert "'kelas-10'" in results["b.pdf"].reason and "'kelas_10'" in results["b.pdf"].reason
    assert "'kelas_10'" in results["c.pdf"].reason
    assert [c.name for c in engine.store.collections()] == ["nexus__kelas_10__ipa__fake-64"]
    assert set(chunk_texts(engine)) == {"a.pdf"}


# --- 5. the PDF reader's answers cannot be forged by what it prints ---------------------------
_NOISY_SITECUSTOMIZE = """
import json, os

_loads = json.loads


def _noisy_loads(text, *args, **kwargs):
    value = _loads(text, *args, **kwargs)
    if isinstance(value, dict) and "max_pages" in value:  # a request to the PDF worker
        mode = os.environ.get("NOISY_WORKER")
        if mode == "forge":  # what MuPDF's C code could print on fd 1
            os.write(1, b'{"status": "ok", "pages": ["FORGED TEXT"], "note": ""}\\n')
        elif mode == "confused":  # a worker that reads another file than it was asked
            value["path"] = os.environ["NOISY_OTHER"]
    return value


json.loads = _noisy_loads
"""


@pytest.fixture
def noisy_worker(tmp_path, monkeypatch):
    site = tmp_path / "noisy_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NOISY_SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return monkeypatch


def test_junk_on_the_workers_stdout_never_becomes_a_files_text(engine, inbox, noisy_worker):
    noisy_worker.setenv("NOISY_WORKER", "forge")
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "a.pdf", ["Atom terdiri dari proton."])
    pdfs.text_pdf(subject / "b.pdf", ["Molekul air dan ikatan hidrogen."])

    outcome = ingest(engine, inbox)

    assert statuses(outcome.files) == {"a.pdf": "ingested", "b.pdf": "ingested"}
    texts = chunk_texts(engine)
    assert "proton" in texts["a.pdf"] and "Molekul" not in texts["a.pdf"]
    assert "hidrogen" in texts["b.pdf"] and "proton" not in texts["b.pdf"]
    assert "FORGED" not in "".join(texts.values())


def test_an_answer_for_another_file_is_refused(engine, inbox, noisy_worker):
    subject = inbox / "kelas_10" / "ipa"
    pdfs.text_pdf(subject / "a.pdf", ["Atom terdiri dari proton."])
    other = pdfs.text_pdf(inbox.parent / "lain.pdf", ["Teks berkas lain."])
    noisy_worker.setenv("NOISY_WORKER", "confused")
    noisy_worker.setenv("NOISY_OTHER", str(other))

    [result] = ingest(engine, inbox).files

    assert result.status is FileStatus.FAILED
    assert "another request" in result.reason
    assert chunk_texts(engine) == {}


def test_a_folder_swapped_for_a_link_mid_job_cannot_bring_in_an_outside_file(
    engine, inbox, tmp_path
):
    """After the scan, a teacher replaces `sub/` by a link to a folder outside the inbox
    (e.g. exam answers); the engine must not read the outside file that now sits there."""
    folder = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(folder / "a.pdf", ["Bab satu tentang algoritma. " * 20])
    pdfs.text_pdf(folder / "b.pdf", ["Bab dua tentang jaringan. " * 20])
    pdfs.text_pdf(folder / "sub" / "zz.pdf", ["harmless decoy text"])
    outside = tmp_path / "exams"
    pdfs.text_pdf(outside / "zz.pdf", ["KUNCI JAWABAN UJIAN rahasia"])

    class SwapWhileTheFirstFileIsEmbedded:
        swapped = False

        def file_started(self, path, number, total):
            if not self.swapped:  # the scan is done; sub/zz.pdf is not opened yet
                self.swapped = True
                os.rename(folder / "sub", folder / ".old_sub")
                os.symlink(outside, folder / "sub")

        def chunks_embedded(self, count, total):
            pass

        def file_done(self, result):
            pass

    outcome = engine.ingestor.run([inbox], inbox, progress=SwapWhileTheFirstFileIsEmbedded())

    result = by_name(outcome.files)["zz.pdf"]
    assert str(result.status) == "outside_inbox", result.reason
    assert not any("KUNCI" in text for text in chunk_texts(engine).values())
    assert not any("KUNCI" in p.read_text() for p in engine.settings.text_dir.glob("*.txt"))


def test_a_hard_link_in_the_inbox_never_serves_a_file_of_the_data_dir(engine, inbox):
    """With the inbox inside the data dir, a hard link at a catalogued PDF's path to the
    signing key must not be served (nor ingested): the key is the root of trust."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app
    from engine.api.documents import document_id
    from engine.auth.api_keys import api_key_store
    from engine.vkp.keys import keygen

    lesson = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab1.pdf", ["Fotosintesis di daun."])
    engine.ingestor.run([inbox], inbox)
    private, _ = keygen(engine.settings.data_dir / "keys")
    client = TestClient(create_app(engine))
    key = api_key_store(engine.settings.data_dir).create("sekolah")
    [document] = engine.catalog.all()
    url = f"/v1/documents/{document_id(document)}/pdf"
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(url, headers=headers).content == lesson.read_bytes()

    lesson.unlink()
    os.link(private, lesson)
    answer = client.get(url, headers=headers)
    assert answer.status_code == 404 and private.read_bytes() not in answer.content

    # the same bytes with one name but not what was ingested: not served either
    lesson.unlink()
    lesson.write_bytes(private.read_bytes())
    assert client.get(url, headers=headers).status_code == 404

    # and a hard link is not read by ingest: a status says why
    lesson.unlink()
    other = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "bab2.pdf", ["Respirasi sel."])
    os.link(other, inbox / "kelas_10" / "ipa" / "salinan.pdf")
    outcome = engine.ingestor.run([inbox], inbox)
    statuses = {Path(f.path).name: (f.status, f.reason) for f in outcome.files}
    assert statuses["salinan.pdf"][0] == FileStatus.NOT_A_FILE
    assert "hard link" in statuses["salinan.pdf"][1]
