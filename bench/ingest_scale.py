"""Ingest at the sizes a school meets: one 500-page textbook, and an inbox of 1,000 files.

    python bench/ingest_scale.py [--pages 500] [--files 1000] [--model MODEL]

Each case runs `nexus ingest` in a fresh process and data dir (model load included, the
default model of a new data dir unless --model) and prints wall time, pages/s or files/s,
chunks/s, and the peak resident memory of the engine process and of the whole process tree
(the engine plus its PDF worker), sampled every 0.1 s from /proc. The issue's target: a
500-page textbook ingests with peak RSS <= 1 GB.

The textbook comes from devtools/books.py (two columns, running header and footer, tables,
a table of contents), grown chapter by chapter until it has at least --pages pages; the inbox
from bench/corpus.py (one page of lesson text per file, over ten grade/subject folders).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import make_corpus  # noqa: E402
from devtools.books import Chapter, Section, make_book  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class PeakMemory:
    """Samples the RSS of a process and of its tree until stopped."""

    def __init__(self, pid: int, every_s: float = 0.1):
        self.pid, self.every_s = pid, every_s
        self.engine = self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            own = rss_bytes(self.pid)
            self.engine = max(self.engine, own)
            self.tree = max(self.tree, own + sum(rss_bytes(c) for c in children(self.pid)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def textbook(path: Path, pages: int) -> int:
    """A textbook of at least `pages` pages; returns its page count."""

    def chapter(number: int) -> Chapter:
        sections = [
            Section(
                f"Subbab {number}.{s}",
                [
                    f"Istilah {number}-{s}-{p} adalah konsep ke-{p} dari subbab {number}.{s}. "
                    "Siswa mempelajari contoh, latihan, dan penerapannya dalam kehidupan sehari-"
                    "hari bersama guru di kelas, lalu menuliskan rangkuman di buku catatan."
                    for p in range(8)
                ],
            )
            for s in range(1, 7)
        ]
        return Chapter(f"Materi {number}", sections)

    probe = make_book(path, [chapter(1), chapter(2)])
    per_chapter = max(1, (probe.pages - 2) // 2)
    count = max(2, -(-(pages - 2) // per_chapter))
    while True:
        book = make_book(path, [chapter(n) for n in range(1, count + 1)])
        if book.pages >= pages:
            return book.pages
        count += max(1, -(-(pages - book.pages) // per_chapter))


def ingest(inbox: Path, data_dir: Path, model: str) -> dict:
    env = os.environ | {"NEXUS_DATA_DIR": str(data_dir), "NEXUS_LOG_LEVEL": "WARNING"}
    if model:
        env["LOCAL_EMBEDDING_MODEL"] = model
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli.main", "ingest", str(inbox), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = PeakMemory(proc.pid)
    out, err = proc.communicate()
    peak.stop()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):  # 3: some files failed, reported in the JSON
        raise SystemExit(f"nexus ingest exited {proc.returncode}: {err[-2000:]}")
    job = json.loads(out)
    files = job.get("files", [])
    return {
        "seconds": seconds,
        "files": len(files),
        "ingested": sum(1 for f in files if f.get("status") == "ingested"),
        "pages": sum(int(f.get("pages") or 0) for f in files),
        "chunks": sum(int(f.get("chunks") or 0) for f in files),
        "engine_peak_mb": peak.engine / 2**20,
        "tree_peak_mb": peak.tree / 2**20,
    }


def report(name: str, r: dict) -> None:
    print(
        f"{name}: {r['files']} files ({r['ingested']} ingested), {r['pages']} pages,"
        f" {r['chunks']} chunks in {r['seconds']:.1f} s"
        f" = {r['pages'] / r['seconds']:.1f} pages/s, {r['files'] / r['seconds']:.1f} files/s,"
        f" {r['chunks'] / r['seconds']:.1f} chunks/s; peak RSS engine"
        f" {r['engine_peak_mb']:.0f} MB, engine + PDF worker {r['tree_peak_mb']:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--model", default="", help="LOCAL_EMBEDDING_MODEL (default: new dirs')")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-ingest-scale-") as tmp:
        tmp = Path(tmp)
        if args.pages:
            book = tmp / "book" / "kelas_9" / "informatika" / "buku_informatika.pdf"
            pages = textbook(book, args.pages)
            print(f"textbook: {pages} pages, {book.stat().st_size / 2**20:.1f} MB")
            report(f"{pages}-page textbook", ingest(tmp / "book", tmp / "data-book", args.model))
        if args.files:
            subjects = [f"mapel_{n}" for n in range(10)]
            make_corpus(tmp / "many", args.files, 1, chars_per_page=1200, subjects=subjects)
            report(f"{args.files}-file inbox", ingest(tmp / "many", tmp / "data-many", args.model))


if __name__ == "__main__":
    main()
