"""Real-looking textbooks: extraction quality, OCR accuracy and speed, and page-cited retrieval.

    python bench/books.py [--chapters 4] [--scans 1] [--dpi 150,200,300] [--no-retrieval]
                          [--model use-multilingual-v3]

Builds three textbooks with devtools/books.py (two columns drawn row by row, running header and
footer, table of contents, ruled tables, hyphenation, ligatures, chapter headings, page labels)
and scanned copies of some of them (grey JPEG pages at 150 dpi, no text layer), then prints:

- the share of stored passages holding running-header/footer text (goal 0), for text books
  and scans;
- extraction pages/s of text books through the capped worker (all the new steps), against
  plain `page.get_text()`;
- OCR pages/s and character error rate (CER: edit distance / reference length, reference =
  the text-layer extraction of the same page) for each OCR_DPI tried (RapidOCR is compared
  in bench/ocr_compare.py);
- with the real model (MiniLM, or --model): hit@1 and hit@5 of "Apa yang dimaksud dengan
  <term>?" and of an English question asking for the term by its meaning (ENGLISH), where a
  hit is the right book and a cited page range holding the page the definition is on.

Figures are from one run on a shared machine: treat them as rough.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from devtools.books import Book, chapters_from, make_book, scan_copy  # noqa: E402
from engine.pdf.extract import PdfExtractor  # noqa: E402

HEADER = re.compile(r"informatika untuk smp|ilmu pengetahuan alam untuk|kelas\s*[79]\b", re.I)

# subject -> chapter -> (term, definition); each chapter gets two sections of two terms
SUBJECTS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "informatika": {
        "Berpikir Komputasional": [
            ("Dekomposisi", "memecah masalah besar menjadi bagian-bagian kecil yang mudah"),
            ("Abstraksi", "menyaring detail penting dan membuang detail yang tidak perlu"),
            ("Pengenalan pola", "menemukan kesamaan di antara beberapa masalah serupa"),
            ("Algoritma", "urutan langkah logis dan terbatas untuk menyelesaikan masalah"),
        ],
        "Jaringan Komputer": [
            ("Topologi bintang", "susunan jaringan dengan semua perangkat terhubung ke switch"),
            ("Topologi cincin", "susunan perangkat yang membentuk lingkaran tertutup"),
            ("Alamat IP", "nomor unik yang menandai setiap perangkat di dalam jaringan"),
            ("Router", "perangkat yang meneruskan paket data antarjaringan yang berbeda"),
        ],
        "Struktur Data": [
            ("Graf berarah", "graf yang setiap sisinya memiliki arah dari simpul ke simpul"),
            ("Antrean", "struktur data yang mengeluarkan elemen pertama yang masuk"),
            ("Tumpukan", "struktur data yang mengeluarkan elemen terakhir yang masuk"),
            ("Larik", "kumpulan elemen bertipe sama yang diakses melalui indeks"),
        ],
        "Pemrograman": [
            ("Variabel", "nama tempat menyimpan nilai yang dapat berubah selama program"),
            ("Perulangan", "instruksi yang menjalankan blok kode berkali-kali"),
            ("Percabangan", "instruksi yang memilih blok kode berdasarkan kondisi"),
            ("Fungsi", "blok kode bernama yang dapat dipanggil ulang dengan parameter"),
        ],
    },
    "ipa": {
        "Sel dan Organisme": [
            ("Mitokondria", "organel tempat respirasi sel yang menghasilkan energi"),
            ("Ribosom", "organel kecil tempat sintesis protein berlangsung"),
            ("Kloroplas", "organel berisi klorofil tempat fotosintesis terjadi"),
            ("Membran sel", "lapisan tipis yang mengatur keluar masuknya zat"),
        ],
        "Gaya dan Gerak": [
            ("Inersia", "kecenderungan benda mempertahankan keadaan diam atau geraknya"),
            ("Gaya gesek", "gaya yang melawan arah gerak dua permukaan yang bersentuhan"),
            ("Percepatan", "perubahan kecepatan benda setiap satuan waktu"),
            ("Tekanan hidrostatis", "tekanan zat cair diam yang bergantung pada kedalaman"),
        ],
        "Zat dan Perubahannya": [
            ("Sublimasi", "perubahan wujud zat padat langsung menjadi gas"),
            ("Kondensasi", "perubahan wujud gas menjadi cair karena pendinginan"),
            ("Massa jenis", "perbandingan massa benda dengan volumenya"),
            ("Larutan asam", "larutan dengan pH kurang dari tujuh yang memerahkan lakmus"),
        ],
    },
    "ips": {
        "Kondisi Geografis": [
            ("Iklim tropis", "iklim daerah khatulistiwa dengan suhu tinggi sepanjang tahun"),
            ("Garis lintang", "garis khayal pada peta yang sejajar dengan khatulistiwa"),
            ("Dataran tinggi", "daerah yang jauh lebih tinggi dari permukaan laut"),
            ("Angin muson", "angin yang berganti arah setiap setengah tahun"),
        ],
        "Kegiatan Ekonomi": [
            ("Produksi", "kegiatan menghasilkan atau menambah nilai guna barang"),
            ("Distribusi", "kegiatan menyalurkan barang dari produsen ke konsumen"),
            ("Koperasi", "badan usaha beranggotakan orang dengan asas kekeluargaan"),
            ("Inflasi", "kenaikan harga barang secara umum dan terus-menerus"),
        ],
        "Sejarah Nusantara": [
            ("Sriwijaya", "kerajaan maritim besar yang berpusat di Sumatra bagian selatan"),
            ("Majapahit", "kerajaan Hindu-Buddha yang berpusat di Jawa Timur"),
            ("Sumpah Pemuda", "ikrar para pemuda tahun 1928 tentang satu tanah air"),
            ("Proklamasi", "pernyataan kemerdekaan Indonesia pada 17 Agustus 1945"),
        ],
    },
}
# English questions over the Indonesian books: each asks for a term by its meaning, without
# the Indonesian term itself (only the embedding can bridge them).
ENGLISH = {
    "Dekomposisi": "How do you break a big problem into small, easy parts?",
    "Abstraksi": "What is it called to keep the important details and drop the unneeded ones?",
    "Pengenalan pola": "How do we find what several similar problems have in common?",
    "Algoritma": "What is a finite sequence of logical steps that solves a problem?",
    "Topologi bintang": "Which network layout connects every device to a central switch?",
    "Topologi cincin": "Which network layout arranges the devices in a closed loop?",
    "Alamat IP": "What unique number identifies each device on a network?",
    "Router": "Which device forwards data packets between different networks?",
    "Graf berarah": "What kind of graph has edges that point from one vertex to another?",
    "Antrean": "Which data structure removes the element that came in first?",
    "Tumpukan": "Which data structure removes the element that came in last?",
    "Larik": "What collection of same-type elements is accessed by an index?",
    "Variabel": "What named storage holds a value that can change while a program runs?",
    "Perulangan": "Which instruction runs a block of code many times?",
    "Percabangan": "Which instruction chooses a block of code depending on a condition?",
    "Fungsi": "What named block of code can be called again with parameters?",
    "Mitokondria": "Which organelle carries out cellular respiration to produce energy?",
    "Ribosom": "Where in the cell are proteins made?",
    "Kloroplas": "Which organelle contains chlorophyll and does photosynthesis?",
    "Membran sel": "What thin layer controls what enters and leaves the cell?",
    "Inersia": "Why does an object tend to stay at rest or keep moving?",
    "Gaya gesek": "Which force opposes the motion of two surfaces touching each other?",
    "Percepatan": "What is the change of an object's speed per unit of time?",
    "Tekanan hidrostatis": "What pressure does still water exert depending on depth?",
    "Sublimasi": "What is it called when a solid turns straight into a gas?",
    "Kondensasi": "What is it called when a gas cools and turns into a liquid?",
    "Massa jenis": "What is the ratio of an object's mass to its volume?",
    "Larutan asam": "Which solution has a pH below seven and turns litmus red?",
    "Iklim tropis": "What climate do equatorial regions with high temperatures all year have?",
    "Garis lintang": "What imaginary map lines run parallel to the equator?",
    "Dataran tinggi": "What do we call land that lies far above sea level?",
    "Angin muson": "Which winds change direction every half year?",
    "Produksi": "Which activity creates goods or adds to their usefulness?",
    "Distribusi": "Which activity moves goods from producers to consumers?",
    "Koperasi": "Which kind of business is owned by its members on family principles?",
    "Inflasi": "What is a general and continuous rise in prices called?",
    "Sriwijaya": "Which great maritime kingdom was centred in southern Sumatra?",
    "Majapahit": "Which Hindu-Buddhist kingdom was centred in East Java?",
    "Sumpah Pemuda": "What pledge did the youth make in 1928 about one homeland?",
    "Proklamasi": "What declared Indonesia's independence on 17 August 1945?",
}
HEADERS = {
    "informatika": ("Informatika untuk SMP/MTs Kelas IX", "Kelas 9 | {label}"),
    "ipa": ("Ilmu Pengetahuan Alam untuk SMP/MTs Kelas VII", "Kelas 7 | {label}"),
    "ips": ("Ilmu Pengetahuan Sosial untuk SMP/MTs", "Kelas 7 | {label}"),
}
TABLE = [["Istilah", "Bab", "Keterangan"], ["Contoh", "1", "Ringkasan materi"]]


EXTRA = (
    "Kegiatan {n}: bacalah kembali materi {topic} lalu tuliskan pertanyaan yang muncul di "
    "buku catatanmu. Diskusikan jawabannya bersama kelompok dan catat kesimpulan yang "
    "disepakati. Guru dapat memberi penilaian berdasarkan keaktifan setiap peserta didik "
    "selama diskusi berlangsung serta ketepatan kesimpulan yang ditulis."
)


def build_books(folder: Path, chapters: int) -> dict[str, Book]:
    books = {}
    for subject, topics in SUBJECTS.items():
        content = chapters_from(
            {
                chapter: {"Konsep Dasar": facts[:2], "Penerapan": facts[2:]}
                for chapter, facts in list(topics.items())[:chapters]
            }
        )
        for number, chapter in enumerate(content, start=1):
            for section in chapter.sections:
                section.paragraphs += [
                    EXTRA.format(n=f"{number}.{k}", topic=chapter.title.lower())
                    for k in range(1, 4)
                ]
        content[0].sections[0].table = TABLE
        header, footer = HEADERS[subject]
        path = folder / "kelas_9" / subject / f"buku_{subject}.pdf"
        books[subject] = make_book(path, content, header=header, footer=footer)
    return books


def levenshtein(a: str, b: str) -> int:
    """Edit distance, one numpy row at a time (insertions resolved by a running minimum)."""
    if not a or not b:
        return max(len(a), len(b))
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, char in enumerate(a.encode("utf-32-le").decode("utf-32-le"), start=1):
        cost = (codes_b != ord(char)).astype(np.int64)
        candidate = np.empty_like(row)
        candidate[0] = i
        candidate[1:] = np.minimum(row[1:] + 1, row[:-1] + cost)
        row = np.minimum.accumulate(candidate - steps) + steps
    return int(row[-1])


def cer(reference: list[str], hypothesis: list[str], spaces: bool = True) -> float:
    """Character error rate, whitespace runs made one space (or, without `spaces`, removed:
    then only letters read wrong count, not words run together)."""
    joiner = " " if spaces else ""
    errors = total = 0
    for ref, hyp in zip(reference, hypothesis, strict=True):
        ref, hyp = joiner.join(ref.split()), joiner.join(hyp.split())
        errors += levenshtein(ref, hyp)
        total += len(ref)
    return errors / max(total, 1)


def extract_all(paths: list[Path], **ocr) -> tuple[dict[Path, list[str]], float, int, int]:
    """Texts per page of each file, seconds (warm worker), pages and OCR'd pages."""
    texts, pages, ocr_pages = {}, 0, 0
    with PdfExtractor(max_pages=500, timeout_s=600, memory_mb=2048, **ocr) as reader:
        reader.extract(paths[0])  # start the worker, import PyMuPDF
        started = time.perf_counter()
        for path in paths:
            extracted = reader.extract(path)
            texts[path] = extracted.pages
            pages += len(extracted.pages)
            ocr_pages += extracted.ocr_pages
        return texts, time.perf_counter() - started, pages, ocr_pages


def plain_speed(paths: list[Path]) -> float:
    import pymupdf

    started, pages = time.perf_counter(), 0
    for path in paths:
        with pymupdf.open(path) as doc:
            for page in doc:
                page.get_text()
                pages += 1
    return pages / (time.perf_counter() - started)


def furniture_share(engine, subjects: list[str]) -> tuple[int, int]:
    chunks = [
        c
        for col in engine.store.collections()
        if col.subject in subjects
        for c in engine.store.get_chunks(col.name)
    ]
    return sum(1 for c in chunks if HEADER.search(c.text)), len(chunks)


def retrieval(
    engine, books: dict[str, Book], subject_suffix: str, english: bool = False
) -> tuple[float, float, int]:
    """Page-cited hit@1/hit@5 of one question per term: "Apa yang dimaksud dengan <term>?", or
    with `english` the term's question in ENGLISH."""
    hit1 = hit5 = asked = 0
    for subject, book in books.items():
        for term, page in book.facts.items():
            if term.startswith("§"):
                continue
            question = ENGLISH[term] if english else f"Apa yang dimaksud dengan {term.lower()}?"
            hits = engine.searcher.search(question, subject=subject + subject_suffix, k=5)
            good = [
                book.path.name == h.source and _cites(h.pages or str(h.page), page) for h in hits
            ]
            asked += 1
            hit1 += bool(good[:1] and good[0])
            hit5 += any(good)
    return hit1 / asked, hit5 / asked, asked


def _cites(pages: str, page: int) -> bool:
    first, _, last = pages.partition("-")
    return int(first) <= page <= int(last or first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", type=int, default=4)
    parser.add_argument("--scans", type=int, default=1, help="books to scan (OCR is slow)")
    parser.add_argument("--dpi", default="150,200,300", help="OCR_DPI values to compare")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the retrieval part")
    parser.add_argument(
        "--model", default="", help="LOCAL_EMBEDDING_MODEL for retrieval (default: MiniLM)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp) / "inbox"
        books = build_books(inbox, args.chapters)
        texts = [b.path for b in books.values()]
        scans: dict[str, Book] = {}
        for subject, book in list(books.items())[: args.scans]:
            target = inbox / "kelas_9" / f"{subject}_scan" / book.path.name
            scans[subject] = Book(scan_copy(book.path, target), book.pages, book.facts)
        pages = sum(b.pages for b in books.values())
        print(f"books: {len(books)} text ({pages} pages), {len(scans)} scanned")

        reference, seconds, n, _ = extract_all(texts)
        print(
            f"extraction (worker, all steps): {n / seconds:.1f} pages/s;"
            f" plain page.get_text(): {plain_speed(texts):.1f} pages/s"
        )
        for dpi in [int(d) for d in args.dpi.split(",")]:
            scan_paths = [b.path for b in scans.values()]
            found, seconds, n, ocr_pages = extract_all(scan_paths, ocr_dpi=dpi)
            ref = [t for s in scans for t in reference[books[s].path]]
            hyp = [t for p in scan_paths for t in found[p]]
            print(
                f"tesseract ind+eng @{dpi} dpi: {ocr_pages / seconds:.2f} OCR pages/s,"
                f" CER {cer(ref, hyp):.3f} over {ocr_pages} pages"
            )
        print("RapidOCR against Tesseract: bench/ocr_compare.py")
        if args.no_retrieval:
            return
        from bench.corpus import reference_embedder
        from engine.app import build_engine
        from engine.settings import Settings

        os.environ["NEXUS_DATA_DIR"] = str(Path(tmp) / "data")
        settings = Settings()
        embedder = reference_embedder(args.model)
        embedder.load()
        print(f"retrieval model: {embedder.model.model_id}")
        engine = build_engine(settings, embedder=embedder)
        started = time.perf_counter()
        outcome = engine.ingestor.run([inbox], inbox)
        print(
            f"ingest (real model): {time.perf_counter() - started:.1f} s,"
            f" {outcome.job.total_chunks} chunks, status {outcome.job.status}"
        )
        bad, total = furniture_share(engine, list(books))
        print(f"passages with header/footer text, text books: {bad}/{total}")
        bad, total = furniture_share(engine, [s + "_scan" for s in scans])
        print(f"passages with header/footer text, scans: {bad}/{total}")
        for english in (False, True):
            kind = "English questions" if english else "term questions"
            for label, shelf, suffix in (("text books", books, ""), ("scans", scans, "_scan")):
                if shelf:
                    h1, h5, asked = retrieval(engine, shelf, suffix, english)
                    print(f"{label}, {kind}: hit@1 {h1:.2f}, hit@5 {h5:.2f} ({asked})")
        engine.ingestor.close()


if __name__ == "__main__":
    main()
