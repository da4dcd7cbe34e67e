"""A classroom at once (issue 24): searches list no collections of their own, questions that
arrive together share one encoder call and one query per collection, and the answers are the
ones each question gets alone."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from engine.app import build_engine
from engine.documents.catalog import Document
from engine.search.batching import MicroBatcher
from engine.search.lexical.rows import LexicalChunk
from engine.store.changes import ChangeMarker
from engine.store.chroma import ChunkStore
from engine.store.chunks import StoredChunk, chunk_id
from engine.store.client import make_chroma_client
from tests.support.fakes import FakeEmbedder

TOPICS = {
    ("kelas_10", "biologi"): "fotosintesis terjadi di daun dengan bantuan klorofil",
    ("kelas_10", "informatika"): "algoritma adalah langkah langkah menyelesaikan masalah",
    ("kelas_11", "fisika"): "hukum newton tentang gerak benda dan gaya",
    ("kelas_12", "kimia"): "ikatan kovalen terbentuk dari pemakaian elektron bersama",
}
QUESTIONS = ["apa itu fotosintesis", "jelaskan algoritma", "hukum newton", "ikatan kovalen"]


class CountingClient:
    """A real chromadb client that counts the listing, counting and lookup calls."""

    def __init__(self, client):
        self.client = client
        self.calls: Counter = Counter()

    def list_collections(self):
        self.calls["list_collections"] += 1
        collections = self.client.list_collections()
        for collection in collections:
            count = collection.count

            def counted(count=count):
                self.calls["count"] += 1
                return count()

            collection.count = counted
        return collections

    def get_collection(self, *args, **kwargs):
        self.calls["get_collection"] += 1
        return self.client.get_collection(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def sha_of(grade: str, subject: str) -> str:
    return f"{grade}{subject}".encode().hex().ljust(64, "0")[:64]


def add_document(engine, grade: str, subject: str, text: str, n: int = 3) -> None:
    sha = sha_of(grade, subject)
    model = engine.embedder.model
    chunks = [
        StoredChunk(
            chunk_id(sha, i),
            f"{text} ({i})",
            {
                "grade": grade,
                "subject": subject,
                "source": f"{subject}.pdf",
                "file_sha256": sha,
                "page": 1,
                "pages": "1",
            },
            engine.embedder.embed([f"{text} ({i})"]).vectors[0],
        )
        for i in range(n)
    ]
    name = engine.store.add(grade, subject, model.model_id, model.key, chunks)
    commit(engine, grade, subject, sha, name, chunks)


def commit(engine, grade: str, subject: str, sha: str, collection: str, chunks: list) -> None:
    """What an ingest commits once the chunks are stored: catalogue row and lexical rows."""
    source = chunks[0].metadata["source"]
    with engine.catalog.transaction():
        engine.catalog.put(
            Document(
                path=str(engine.settings.inbox_dir / grade / subject / f"{sha[:8]}-{source}"),
                grade=grade,
                subject=subject,
                file_name=source,
                sha256=sha,
                size=1000,
                status="ingested",
                chunks=len(chunks),
                collection=collection,
            )
        )
        engine.lexical.add(grade, subject, sha, [LexicalChunk.of(c) for c in chunks])


def counted_engine(settings, embedder):
    client = CountingClient(make_chroma_client(settings))
    store = ChunkStore(client, ChangeMarker(settings.run_dir / "chunks.changed"))
    return build_engine(settings, embedder=embedder, store=store), client


def test_searches_neither_list_nor_count_collections_until_the_store_changes(settings):
    embedder = FakeEmbedder()
    engine, client = counted_engine(settings, embedder)
    for (grade, subject), text in TOPICS.items():
        add_document(engine, grade, subject, text)
    engine.searcher.search("fotosintesis")  # the first search after the writes lists once
    client.calls.clear()

    for question in QUESTIONS * 5:
        assert engine.searcher.search(question, k=3)

    assert client.calls == Counter()  # 20 unfiltered searches over 4 collections: no call


def test_a_write_by_another_process_is_searchable_at_the_next_search(settings):
    embedder = FakeEmbedder()
    reader, client = counted_engine(settings, embedder)
    writer = build_engine(settings, embedder=embedder)  # e.g. the watcher of `nexus up`
    add_document(writer, "kelas_10", "biologi", TOPICS[("kelas_10", "biologi")])
    assert {h.subject for h in reader.searcher.search("fotosintesis", mode="vector")} == {"biologi"}

    add_document(writer, "kelas_11", "fisika", TOPICS[("kelas_11", "fisika")])
    hits = reader.searcher.search("hukum newton gerak", mode="vector", k=10)
    assert "fisika" in {h.subject for h in hits}
    assert [c.count for c in reader.store.collections(subject="fisika")] == [3]

    writer.store.delete_document(
        reader.store.collections(subject="fisika")[0].name, sha_of("kelas_11", "fisika")
    )
    assert [c.count for c in reader.store.collections(subject="fisika")] == [0]
    writer.store.drop(reader.store.collections(subject="fisika")[0].name)
    assert reader.store.collections(subject="fisika") == []
    assert "fisika" not in {h.subject for h in reader.searcher.search("newton", mode="vector")}


def test_vector_hits_take_their_text_from_the_index_without_asking_chroma(settings, monkeypatch):
    engine = build_engine(settings, embedder=FakeEmbedder())
    for (grade, subject), text in TOPICS.items():
        add_document(engine, grade, subject, text)
    asked = []
    texts = engine.store.texts
    monkeypatch.setattr(engine.store, "texts", lambda *a: asked.append(a) or texts(*a))

    hits = engine.searcher.search("fotosintesis di daun", mode="vector", k=12)
    hybrid = engine.searcher.search("hukum newton", k=12)

    assert asked == []  # Chroma gave ids and scores only; the texts came from the index
    assert len(hits) == 12 and len(hybrid) == 12
    best = hits[0]
    assert (best.grade, best.subject, best.source, best.page, best.pages) == (
        "kelas_10",
        "biologi",
        "biologi.pdf",
        1,
        "1",
    )
    assert best.text.startswith(TOPICS[("kelas_10", "biologi")])


def test_a_chunk_stored_but_not_committed_is_found_with_its_text_from_chroma(settings):
    """Between storing a file's chunks and committing its catalogue rows (an ingest in
    flight), the vector side still finds them, cited from Chroma's own metadata."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    add_document(engine, "kelas_10", "informatika", TOPICS[("kelas_10", "informatika")])
    sha = "d" * 64
    text = "jaringan komputer menghubungkan perangkat"
    model = engine.embedder.model
    meta = {
        "grade": "kelas_10",
        "subject": "informatika",
        "source": "jaringan.pdf",
        "file_sha256": sha,
        "page": 4,
        "pages": "4-5",
        "section": "Bab 2",
    }
    vector = engine.embedder.embed([text]).vectors[0]
    engine.store.add(
        "kelas_10", "informatika", model.model_id, model.key,
        [StoredChunk(chunk_id(sha, 0), text, meta, vector)],
    )  # fmt: skip

    hits = engine.searcher.search(text, mode="vector", k=2)

    assert hits[0].chunk_id == chunk_id(sha, 0)
    assert (hits[0].text, hits[0].source, hits[0].page, hits[0].pages, hits[0].section) == (
        text,
        "jaringan.pdf",
        4,
        "4-5",
        "Bab 2",
    )
    assert hits[1].source == "informatika.pdf"  # the committed chunks, from the index


def test_a_question_over_many_collections_asks_them_on_several_threads(settings, monkeypatch):
    """Chroma releases the GIL while it searches: a question over every grade/subject asks
    them on the vector pool's threads, and gets the hits it gets asking one at a time."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    for n in range(3):
        for (grade, subject), text in TOPICS.items():
            add_document(engine, grade, f"{subject}{n}", text)  # 12 collections
    engine.searcher.vector_queries.threads = 1
    alone = [engine.searcher.search(q, k=8) for q in QUESTIONS]
    threads = set()
    nearest_many = engine.store.nearest_many

    def recorded(*args):
        threads.add(threading.current_thread().name)
        time.sleep(0.02)  # long enough that one thread cannot take every collection
        return nearest_many(*args)

    monkeypatch.setattr(engine.store, "nearest_many", recorded)
    engine.searcher.vector_queries.threads = 2

    spread = [engine.searcher.search(q, k=8) for q in QUESTIONS]

    assert len(threads) == 2 and all(name.startswith("nearest") for name in threads)
    assert spread == alone


def lesson_chunks(engine, sha: str, texts: list[str], source: str) -> list[StoredChunk]:
    meta = {"grade": "kelas_10", "subject": "biologi", "source": source, "file_sha256": sha}
    return [
        StoredChunk(
            chunk_id(sha, i),
            text,
            meta | {"page": i + 1, "pages": str(i + 1)},
            engine.embedder.embed([text]).vectors[0],
        )
        for i, text in enumerate(texts)
    ]


def test_a_hit_is_cited_from_its_own_collection_when_another_cut_the_same_file_otherwise(settings):
    """The same file ingested here and installed from a package (or chunked for another
    model) can hold other texts under the same chunk ids: the lexical rows are those of the
    last collection written, so a hit from the other collection is read from Chroma."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    model = engine.embedder.model
    sha = "e" * 64
    local = lesson_chunks(engine, sha, ["fotosintesis di daun", "sel hewan"], "lokal.pdf")
    package = lesson_chunks(engine, sha, ["sel hewan dan tumbuhan", "klorofil"], "paket.pdf")
    mine = engine.store.add("kelas_10", "biologi", model.model_id, model.key, local)
    commit(engine, "kelas_10", "biologi", sha, mine, local)
    theirs = engine.store.add("kelas_10", "biologi", model.model_id, model.key, package, "1.0.0")
    commit(engine, "kelas_10", "biologi", sha, theirs, package)  # installed last
    engine.searcher.active_packages = lambda: {theirs}

    hit = engine.searcher.search("fotosintesis di daun", mode="vector", k=1)[0]

    assert (hit.text, hit.source, hit.page, hit.vector_score) == (
        "fotosintesis di daun",
        "lokal.pdf",
        1,
        1.0,
    )


def test_a_collection_made_again_by_another_process_is_read_through_a_new_handle(settings):
    """A restore or a package reinstalled drops a collection and makes it again: a search
    that listed the collections just before still gets its answer."""
    reader = ChunkStore(make_chroma_client(settings), ChangeMarker(settings.run_dir / "c"))
    writer = ChunkStore(make_chroma_client(settings), ChangeMarker(settings.run_dir / "c"))
    embedder = FakeEmbedder()
    vector = embedder.embed(["daun"]).vectors[0]
    sha = "f" * 64
    chunk = StoredChunk(chunk_id(sha, 0), "daun", {"file_sha256": sha, "page": 1}, vector)
    name = writer.add("kelas_10", "ipa", "fake", "fake-64", [chunk])
    reader.collections()
    assert [hit.id for hit in reader.nearest(name, vector, 1)] == [chunk.id]  # handle kept

    writer.drop(name)
    writer.add("kelas_10", "ipa", "fake", "fake-64", [replace(chunk, text="daun lagi")])

    assert [hit.id for hit in reader.nearest(name, vector, 1)] == [chunk.id]
    assert [c.text for c in reader.texts(name, [chunk.id])] == ["daun lagi"]


def test_vector_search_still_gives_k_hits_when_some_vanished_after_chroma_answered(
    settings, monkeypatch
):
    """A chunk deleted between Chroma's answer and reading its text is skipped, and the next
    best candidate (here from the other grade's collection) takes its place."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    for grade in ("kelas_10", "kelas_11"):
        add_document(engine, grade, "biologi", TOPICS[("kelas_10", "biologi")], n=3)
    first = engine.searcher.search("fotosintesis", mode="vector", k=2)
    gone = (first[0].grade, first[0].subject, first[0].chunk_id)
    chunks = engine.lexical.chunks

    def without_gone(wanted):
        return {key: chunk for key, chunk in chunks(wanted).items() if key != gone}

    monkeypatch.setattr(engine.lexical, "chunks", without_gone)
    monkeypatch.setattr(engine.store, "texts", lambda name, ids: [])  # deleted from both

    hits = engine.searcher.search("fotosintesis", mode="vector", k=2)

    assert len(hits) == 2
    assert gone not in {(h.grade, h.subject, h.chunk_id) for h in hits}
    assert hits[0].chunk_id == first[1].chunk_id


def test_the_index_reads_the_texts_of_many_chunks_at_once(settings):
    """More ids than SQLite binds in one statement; and a grade/subject asked is the only one
    answered, though another holds the same chunk ids."""
    engine = build_engine(settings, embedder=FakeEmbedder())
    sha = "a" * 64
    texts = [f"kalimat {i}" for i in range(1_200)]
    for subject in ("biologi", "fisika"):
        chunks = [
            LexicalChunk(chunk_id(sha, i), f"{subject} {t}", "a.pdf", 1, "1")
            for i, t in enumerate(texts)
        ]
        stored = [StoredChunk(c.chunk_id, c.text, {}, []) for c in chunks]
        commit_rows = f"nexus__kelas_10__{subject}__fake"
        with engine.catalog.transaction():
            engine.catalog.put(
                Document(
                    path=str(engine.settings.inbox_dir / "kelas_10" / subject / "a.pdf"),
                    grade="kelas_10",
                    subject=subject,
                    file_name="a.pdf",
                    sha256=sha,
                    size=1,
                    status="ingested",
                    collection=commit_rows,
                )
            )
            engine.lexical.add("kelas_10", subject, sha, chunks)
        assert stored

    wanted = {("kelas_10", "fisika", chunk_id(sha, i)): "nexus__kelas_10__fisika__fake"
              for i in range(1_200)}  # fmt: skip
    found = engine.lexical.chunks(wanted)

    assert len(found) == 1_200
    assert found[("kelas_10", "fisika", chunk_id(sha, 1_199))].text == "fisika kalimat 1199"
    assert engine.lexical.chunks({("kelas_10", "fisika", chunk_id(sha, 0)): "other"}) == {}


def test_a_store_without_a_marker_lists_every_time(settings):
    client = CountingClient(make_chroma_client(settings))
    store = ChunkStore(client)
    store.collections()
    store.collections()
    assert client.calls["list_collections"] == 2


def test_one_query_for_several_vectors_gives_each_the_hits_of_its_own_query(settings):
    store = ChunkStore(make_chroma_client(settings))
    embedder = FakeEmbedder()
    texts = [f"kalimat nomor {i} tentang {t}" for i in range(20) for t in ("daun", "gerak")]
    vectors = embedder.embed(texts).vectors
    sha = "c" * 64
    name = store.add(
        "kelas_10",
        "ipa",
        "fake",
        "fake-64",
        [
            StoredChunk(chunk_id(sha, i), t, {"file_sha256": sha, "source": "a.pdf", "page": 1}, v)
            for i, (t, v) in enumerate(zip(texts, vectors, strict=True))
        ],
    )
    asked = embedder.embed(QUESTIONS).vectors

    together = store.nearest_many(name, asked, 7)

    assert together == [store.nearest(name, vector, 7) for vector in asked]
    assert all(len(hits) == 7 for hits in together)


class SlowFakeEmbedder(FakeEmbedder):
    """The fake embedder, taking a while per call and recording how many questions each got."""

    def __init__(self, delay_s: float = 0.15):
        super().__init__()
        self.delay_s = delay_s
        self.query_calls: list[int] = []

    def embed_queries(self, texts):
        self.query_calls.append(len(texts))
        time.sleep(self.delay_s)
        return super().embed_queries(texts)


def search_at_once(searcher, questions, **options) -> list:
    answers: list = [None] * len(questions)
    start = threading.Barrier(len(questions))

    def ask(i: int) -> None:
        start.wait()
        answers[i] = searcher.search(questions[i], **options)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_questions_that_arrive_together_share_encoder_calls_and_rank_as_alone(settings):
    embedder = SlowFakeEmbedder()
    engine = build_engine(settings, embedder=embedder)
    for (grade, subject), text in TOPICS.items():
        add_document(engine, grade, subject, text)
    questions = QUESTIONS * 3
    alone = [[h.to_dict() for h in engine.searcher.search(q, k=4)] for q in questions]
    embedder.query_calls.clear()

    together = search_at_once(engine.searcher, questions, k=4)

    # 12 questions at once: the first call takes one, the next calls the ones that waited
    assert len(embedder.query_calls) < len(questions)
    assert max(embedder.query_calls) > 1
    assert [[h.to_dict() for h in hits] for hits in together] == alone


def test_filtered_and_unfiltered_questions_batched_together_keep_their_own_collections(
    settings,
):
    engine = build_engine(settings, embedder=SlowFakeEmbedder())
    for (grade, subject), text in TOPICS.items():
        add_document(engine, grade, subject, text)
    asks = [("hukum newton", None), ("hukum newton", "biologi"), ("algoritma", "informatika")] * 3
    alone = [engine.searcher.search(q, subject=s, k=5) for q, s in asks]
    answers: list = [None] * len(asks)
    start = threading.Barrier(len(asks))

    def ask(i: int) -> None:
        start.wait()
        answers[i] = engine.searcher.search(asks[i][0], subject=asks[i][1], k=5)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert answers == alone
    assert {h.subject for h in answers[1]} == {"biologi"}


def test_the_micro_batcher_answers_a_lone_request_alone_and_waiting_ones_together():
    calls: list[list[int]] = []
    release = threading.Event()

    def process(requests: list[int]) -> list[int]:
        calls.append(requests)
        if requests == [0]:
            release.wait(5)  # the first batch runs while the others arrive
        return [r * 10 for r in requests]

    batcher: MicroBatcher[int, int] = MicroBatcher(process, max_batch=4, parallel=1)
    release.set()
    assert batcher.submit(0) == 0  # alone: processed at once, in the caller's thread
    assert calls == [[0]]
    release.clear()
    calls.clear()
    answers: dict[int, int] = {}
    first = threading.Thread(target=lambda: answers.setdefault(0, batcher.submit(0)))
    first.start()
    while not calls:
        time.sleep(0.01)
    others = [
        threading.Thread(target=lambda n=n: answers.setdefault(n, batcher.submit(n)))
        for n in range(1, 7)
    ]
    for thread in others:
        thread.start()
    while len(batcher._waiting) < 6:
        time.sleep(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=10)

    assert answers == {n: n * 10 for n in range(7)}
    assert [len(c) for c in calls] == [1, 4, 2]  # alone, then at most max_batch together


def test_a_failing_request_fails_alone_not_its_batch():
    def process(requests: list[str]) -> list[str]:
        if "bad" in requests:
            raise ValueError("bad request")
        time.sleep(0.05)
        return [r.upper() for r in requests]

    batcher: MicroBatcher[str, str] = MicroBatcher(process, max_batch=8, parallel=1)
    results: dict[str, object] = {}
    start = threading.Barrier(5)

    def ask(request: str) -> None:
        start.wait()
        try:
            results[request] = batcher.submit(request)
        except ValueError as exc:
            results[request] = exc

    threads = [threading.Thread(target=ask, args=(r,)) for r in ["a", "b", "bad", "c", "d"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert isinstance(results.pop("bad"), ValueError)
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_batch_sizes_must_be_positive():
    with pytest.raises(ValueError):
        MicroBatcher(lambda r: r, max_batch=0)


def test_a_collection_failing_on_a_pool_thread_fails_only_the_questions_that_asked_it(
    settings, monkeypatch
):
    """A Chroma error raised on the vector pool's threads, inside a batch, reaches the batcher,
    which asks each question again alone: the questions that never asked the failing
    collection get their own answers, those that did get the error, and the pool serves the
    next searches."""
    embedder = SlowFakeEmbedder()
    engine = build_engine(settings, embedder=embedder)
    for (grade, subject), text in TOPICS.items():
        add_document(engine, grade, subject, text)
    add_document(engine, "kelas_12", "sejarah", "proklamasi kemerdekaan indonesia")
    asks = [("hukum newton", "fisika"), ("fotosintesis", "biologi"), ("algoritma", None)] * 3
    alone = [engine.searcher.search(q, subject=s, k=5) for q, s in asks]
    nearest_many = engine.store.nearest_many

    def broken(name, vectors, k):
        if "sejarah" in name:
            assert threading.current_thread().name.startswith("nearest")
            raise RuntimeError("chroma: segment reader failed")
        return nearest_many(name, vectors, k)

    monkeypatch.setattr(engine.store, "nearest_many", broken)
    embedder.query_calls.clear()
    answers: list = [None] * len(asks)
    start = threading.Barrier(len(asks))

    def ask(i: int) -> None:
        start.wait()
        try:
            answers[i] = engine.searcher.search(asks[i][0], subject=asks[i][1], k=5)
        except RuntimeError as exc:
            answers[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert max(embedder.query_calls) > 1  # some questions were batched with a failing one
    for (_, subject), answer, expected in zip(asks, answers, alone, strict=True):
        if subject is None:  # asked every collection, the failing one too
            assert isinstance(answer, RuntimeError) and "segment reader" in str(answer)
        else:
            assert answer == expected
    monkeypatch.setattr(engine.store, "nearest_many", nearest_many)
    assert engine.searcher.search("algoritma", k=5) == alone[2]
