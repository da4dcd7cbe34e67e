"""Search-time techniques kept for Indonesian modules: template text weighed down, informal
spellings read as standard words."""

from __future__ import annotations

from engine.app import build_engine
from engine.search.fusion import FusionConfig
from engine.search.lexical.boilerplate import BoilerplateShares, boilerplate_shares
from engine.search.searcher import Searcher
from engine.settings import Settings
from tests.support.pdfs import text_pdf

TEMPLATE = (
    "Kegiatan pendahuluan: guru membuka pelajaran dengan salam dan doa bersama. "
    "Guru memeriksa kehadiran peserta didik dan menyampaikan tujuan pembelajaran. "
    "Peserta didik berdiskusi dalam kelompok lalu mempresentasikan hasil diskusi."
)
LESSONS = {
    "fotosintesis.pdf": "Fotosintesis mengubah cahaya matahari menjadi glukosa di kloroplas daun.",
    "respirasi.pdf": "Respirasi sel memecah glukosa menjadi energi di mitokondria.",
    "ekosistem.pdf": "Rantai makanan dimulai dari produsen yaitu tumbuhan hijau.",
    "klasifikasi.pdf": "Klasifikasi makhluk hidup memakai tata nama ganda dari Linnaeus.",
}


def test_text_repeated_across_a_subjects_documents_counts_as_template():
    rows = [(f"doc{i}", f"c{i}-t", TEMPLATE) for i in range(4)]
    rows += [(f"doc{i}", f"c{i}-x", text) for i, text in enumerate(LESSONS.values())]
    rows.sort()  # each document's rows together, as the index reads them
    shares = boilerplate_shares(rows)
    assert all(shares[f"c{i}-t"] == 1.0 for i in range(4))
    assert all(shares.get(f"c{i}-x", 0.0) == 0.0 for i in range(4))


def test_a_piece_repeated_within_one_document_is_not_template():
    """Documents are counted, not occurrences: a line a module repeats on every page is its
    own text, while the same line in three modules is template."""
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    own = [("doc0", f"c0-{n}", line) for n in range(5)]
    assert boilerplate_shares(own + [("doc1", "c1-0", "Lain sekali isinya di sini.")]) == {}
    three = [(f"doc{i}", f"c{i}", line) for i in range(3)]
    assert boilerplate_shares(three) == {"c0": 1.0, "c1": 1.0, "c2": 1.0}


def test_a_lessons_own_text_outranks_another_lessons_template_page(inbox, fake_embedder):
    engine = build_engine(Settings(CHUNK_SIZE=100, CHUNK_OVERLAP=0), embedder=fake_embedder)
    for name, text in LESSONS.items():
        text_pdf(inbox / "kelas_7" / "ipa" / name, [TEMPLATE, text])
    engine.ingestor.run([inbox], inbox)
    question = "peserta didik berdiskusi tentang kloroplas daun"

    def first(boilerplate: float) -> str:
        searcher = Searcher(
            engine.embedder,
            engine.store,
            engine.lexical,
            fusion=FusionConfig(vector_weight=0.5, lexical_weight=0.5, boilerplate=boilerplate),
            boilerplate=BoilerplateShares(engine.lexical),
        )
        return searcher.search(question, grade="kelas_7", subject="ipa", k=1)[0]

    assert first(0.0).text.startswith("Peserta didik")  # template words match more of it
    best = first(0.5)
    assert (best.source, best.text) == ("fotosintesis.pdf", LESSONS["fotosintesis.pdf"])


def test_searches_asking_at_once_compute_a_subjects_shares_once(engine, inbox, monkeypatch):
    """After a restart or an ingest a whole class may ask at once: one search reads the
    subject, the others wait for its result and get the same shares."""
    import threading
    import time

    from engine.search.lexical import boilerplate

    for name, text in LESSONS.items():
        text_pdf(inbox / "kelas_7" / "ipa" / name, [TEMPLATE, text])
    engine.ingestor.run([inbox], inbox)
    computed = []
    compute = boilerplate.boilerplate_shares

    def slow(rows, **options):
        computed.append(threading.current_thread().name)
        time.sleep(0.3)
        return compute(rows, **options)

    monkeypatch.setattr(boilerplate, "boilerplate_shares", slow)
    shares = BoilerplateShares(engine.lexical)
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(shares.of("kelas_7", "ipa")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(computed) == 1 and len(answers) == 8
    assert all(a == answers[0] for a in answers) and answers[0]


def test_informal_spellings_score_like_the_standard_words(engine, inbox):
    text_pdf(inbox / "kelas_7" / "ipa" / "daun.pdf", ["Daun menguning karena kekurangan air."])
    text_pdf(inbox / "kelas_7" / "ipa" / "akar.pdf", ["Akar menyerap air dari tanah."])
    engine.ingestor.run([inbox], inbox)

    formal = engine.lexical.search("kenapa daun menguning yang tua", k=1)
    informal = engine.lexical.search("knp daun menguning yg tua", k=1)
    assert informal[0].source == formal[0].source == "daun.pdf"
    assert informal[0].coverage == formal[0].coverage


def test_a_document_committed_between_the_two_passes_is_nobodys_template_yet():
    """The shares read the subject's rows twice; rows that appear in between (an ingest
    committing) count as the subject's own text until the next search computes again."""
    line = "Kegiatan inti dilakukan secara berkelompok di dalam kelas."
    first = [(f"doc{i}", f"c{i}", line) for i in range(3)]

    class Growing:
        passes = 0

        def __iter__(self):
            self.passes += 1
            extra = [("doc9", "c9", "Teks baru yang belum pernah dihitung sebelumnya.")]
            return iter(first + (extra if self.passes > 1 else []))

    assert boilerplate_shares(Growing()) == {"c0": 1.0, "c1": 1.0, "c2": 1.0}
