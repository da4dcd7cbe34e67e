"""The watcher: stability gate (no watchdog needed) and the real observer, inotify and polling."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from engine.inbox.watch import InboxWatcher, StabilityGate
from tests.support import pdfs


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_gate_holds_a_growing_file_until_it_is_still(tmp_path):
    clock = FakeClock()
    gate = StabilityGate(stable_s=2.0, clock=clock)
    path = tmp_path / "kelas_10" / "ipa" / "a.pdf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"%PDF-1.7 part one")
    gate.touch(path)

    clock.now = 1.5
    with path.open("ab") as fh:
        fh.write(b" part two")
    assert gate.ready() == []  # changed: the 2 s start again
    clock.now = 3.0
    assert gate.ready() == []
    clock.now = 3.6
    assert gate.ready() == [path]
    assert gate.ready() == [] and len(gate) == 0


def test_gate_ignores_temp_names_and_expands_folders(tmp_path):
    gate = StabilityGate(stable_s=0, clock=FakeClock())
    folder = tmp_path / "kelas_10" / "ipa"
    folder.mkdir(parents=True)
    for name in ("a.pdf", "b.PDF", "c.pdf.part", "~$d.pdf", "notes.txt"):
        (folder / name).write_bytes(b"x")
    gate.touch(tmp_path / "kelas_10" / "ipa" / "c.pdf.part")
    gate.touch(tmp_path)
    assert gate.ready() == [folder / "a.pdf", folder / "b.PDF"]


def test_gate_releases_a_deleted_path(tmp_path):
    gate = StabilityGate(stable_s=0, clock=FakeClock())
    gone = tmp_path / "kelas_10" / "ipa" / "gone.pdf"
    gate.touch(gone)
    assert gate.ready() == [gone]


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["inotify", "polling"])
def watching(request, engine, inbox):
    """A running watcher over the test inbox; yields the engine."""
    inbox_root = inbox.resolve()
    watcher = InboxWatcher(
        inbox_root,
        lambda paths: engine.ingestor.run(paths, inbox_root, job_type="watch"),
        vanished=lambda: engine.records.vanished(inbox_root),
        polling=request.param == "polling",
        poll_interval_s=0.25,
        stable_s=0.6,
    )
    engine.watcher = watcher
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    yield engine
    watcher.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()


def file_results(engine, name: str):
    return [
        f
        for job in engine.tracker.list_jobs(1000)
        for f in engine.tracker.job_files(job.job_id)
        if Path(f.path).name == name
    ]


def chunk_sources(engine) -> dict[str, int]:
    counts: dict[str, int] = {}
    for col in engine.store.collections():
        for chunk in engine.store.get_chunks(col.name):
            counts[chunk.metadata["source"]] = counts.get(chunk.metadata["source"], 0) + 1
    return counts


@pytest.mark.slow
def test_a_slow_copy_is_read_once_complete_and_deletions_sync(watching, inbox, tmp_path):
    engine = watching
    source = pdfs.text_pdf(tmp_path / "src" / "besar.pdf", pdfs.lesson_pages("ekosistem", 12, 25))
    data = source.read_bytes()
    target = inbox / "kelas_10" / "biologi" / "besar.pdf"
    target.parent.mkdir(parents=True)
    with target.open("wb") as fh:  # a copy over a slow link: 25 pieces, 0.2 s apart
        step = len(data) // 25 + 1
        for start in range(0, len(data), step):
            fh.write(data[start : start + step])
            fh.flush()
            time.sleep(0.2)

    results = wait_for(lambda: file_results(engine, "besar.pdf"), what="the copy to be ingested")
    assert [str(r.status) for r in results] == ["ingested"]  # never read half-written
    assert results[0].pages == 12

    # a change replaces, a deletion removes
    pdfs.text_pdf(target, ["Isi baru yang pendek."])
    wait_for(lambda: chunk_sources(engine) == {"besar.pdf": 1}, what="the change to replace chunks")
    target.unlink()
    wait_for(lambda: chunk_sources(engine) == {}, what="the deletion to remove chunks")


@pytest.mark.slow
def test_partial_download_is_ingested_when_renamed(watching, inbox, tmp_path):
    engine = watching
    folder = inbox / "kelas_11" / "sejarah"
    folder.mkdir(parents=True)
    part = pdfs.text_pdf(
        folder / "kerajaan.pdf.crdownload", ["Kerajaan Majapahit berdiri tahun 1293."]
    )
    # a file dropped after it: once that one is ingested, the watcher has seen the download
    pdfs.text_pdf(folder / "penanda.pdf", ["Candi Borobudur dibangun abad kedelapan."])
    wait_for(lambda: "penanda.pdf" in chunk_sources(engine), what="the file dropped after")
    assert file_results(engine, "kerajaan.pdf.crdownload") == []
    part.rename(folder / "kerajaan.pdf")
    wait_for(lambda: "kerajaan.pdf" in chunk_sources(engine), what="the renamed file")
    assert chunk_sources(engine) == {"kerajaan.pdf": 1, "penanda.pdf": 1}


@pytest.mark.slow
def test_rescan_at_start_catches_changes_made_while_down(engine, inbox):
    inbox_root = inbox.resolve()
    stays = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "tetap.pdf", ["Fotosintesis pada daun."])
    leaves = pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "hapus.pdf", ["Respirasi sel."])
    engine.ingestor.run([inbox_root], inbox_root)
    assert chunk_sources(engine) == {"tetap.pdf": 1, "hapus.pdf": 1}

    # while the engine is down: one file deleted, one folder of new files moved in
    leaves.unlink()
    incoming = pdfs.text_pdf(inbox.parent / "usb" / "baru.pdf", ["Sistem peredaran darah."])
    (inbox / "kelas_11" / "biologi").mkdir(parents=True)
    shutil.move(incoming, inbox / "kelas_11" / "biologi" / "baru.pdf")

    watcher = InboxWatcher(
        inbox_root,
        lambda paths: engine.ingestor.run(paths, inbox_root, job_type="watch"),
        vanished=lambda: engine.records.vanished(inbox_root),
        stable_s=0.3,
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: chunk_sources(engine) == {"tetap.pdf": 1, "baru.pdf": 1},
            what="the rescan",
        )
    finally:
        watcher.stop()
        thread.join(timeout=20)
    assert stays.exists()
