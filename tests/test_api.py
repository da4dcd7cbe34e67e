"""The HTTP API: keys, limits, search, documents, PDFs, packages, OpenAPI, `nexus serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from devtools.bedrock_stub import BedrockStub
from engine.api.app import create_app
from engine.api.documents import document_id
from engine.app import build_engine
from engine.auth.api_keys import api_key_store
from engine.cli.main import main as nexus
from engine.documents.catalog import Document
from engine.settings import Settings
from tests.support import pdfs
from tests.support.fakes import FakeEmbedder
from tests.support.net import free_port

HIT_FIELDS = {
    "text",
    "source",
    "page",
    "pages",
    "section",
    "grade",
    "subject",
    "score",
    "vector_score",
    "lexical_score",
    "chunk_id",
    "document_id",
}
PROTECTED = ["/v1/search?q=algoritma", "/v1/documents", "/v1/packages"]


class Clock:
    """Monotonic seconds that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def book(engine, inbox) -> Path:
    """An ingested three-page PDF, kelas_10/informatika/bab1.pdf."""
    path = pdfs.text_pdf(
        inbox / "kelas_10" / "informatika" / "bab1.pdf", pdfs.lesson_pages("jaringan")
    )
    outcome = engine.ingestor.run([inbox], inbox)
    assert outcome.job.status == "completed", [f.to_dict() for f in outcome.files]
    return path


@pytest.fixture
def key(settings) -> str:
    return api_key_store(settings.data_dir).create("test")


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app(engine))


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def query_count(engine) -> int:
    return engine.catalog.conn.execute("SELECT count(*) FROM telemetry_queries").fetchone()[0]


# --- keys and limits ---------------------------------------------------------------------------
def test_health_needs_no_key_and_tells_no_paths(client):
    response = client.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["engine"] == {"running": False}


@pytest.mark.parametrize("url", PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nxs_wrong"}, {"Authorization": "Basic dGVzdDp0ZXN0"}],
)
def test_every_other_endpoint_refuses_a_missing_or_wrong_key(client, key, url, headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "api-key create" in response.json()["detail"]


def test_a_revoked_key_is_refused_at_once(client, key, settings):
    assert client.get("/v1/packages", headers=auth(key)).status_code == 200
    assert api_key_store(settings.data_dir).revoke("test")
    assert client.get("/v1/packages", headers=auth(key)).status_code == 401


def test_each_key_is_rate_limited_with_retry_after(monkeypatch, settings):
    monkeypatch.setenv("API_RATE_PER_MIN", "3")
    clock = Clock()
    engine = build_engine(Settings(), embedder=FakeEmbedder())
    client = TestClient(create_app(engine, clock=clock))
    first, second = (api_key_store(settings.data_dir).create(n) for n in ("a", "b"))

    assert [client.get("/v1/packages", headers=auth(first)).status_code for _ in range(3)] == [
        200
    ] * 3
    refused = client.get("/v1/packages", headers=auth(first))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "20"  # one token per 60/3 s
    assert "API_RATE_PER_MIN" in refused.json()["detail"]
    assert client.get("/v1/packages", headers=auth(second)).status_code == 200  # own bucket
    assert client.get("/v1/health").status_code == 200  # health is not limited

    clock.now += 20
    assert client.get("/v1/packages", headers=auth(first)).status_code == 200
    assert client.get("/v1/packages", headers=auth(first)).status_code == 429


# --- search -------------------------------------------------------------------------------------
def test_search_returns_hits_with_their_page_and_counts_in_telemetry(client, engine, book, key):
    before = query_count(engine)
    response = client.get(
        "/v1/search",
        params={"q": "halaman 3 bagian 11 jaringan nomor 311", "k": 3, "grade": "kelas_10"},
        headers=auth(key),
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert 1 <= len(results) <= 3
    top = results[0]
    assert set(top) == HIT_FIELDS
    assert (top["source"], top["page"], top["grade"], top["subject"]) == (
        "bab1.pdf",
        3,
        "kelas_10",
        "informatika",
    )
    assert "nomor 311" in top["text"] and top["pages"] == "3" and top["section"] == ""
    assert top["vector_score"] is not None and top["lexical_score"] is not None
    documents = client.get("/v1/documents", headers=auth(key)).json()["documents"]
    assert top["document_id"] == documents[0]["id"]
    assert query_count(engine) == before + 1  # counted like the CLI's searches


@pytest.mark.parametrize("mode", ["vector", "lexical", "hybrid"])
def test_every_mode_answers(client, book, key, mode):
    response = client.get(
        "/v1/search", params={"q": "jaringan nomor 205", "mode": mode, "k": 2}, headers=auth(key)
    )
    assert response.status_code == 200
    assert [r["source"] for r in response.json()["results"]] == ["bab1.pdf"] * 2


def test_search_in_another_grade_finds_nothing(client, book, key):
    response = client.get(
        "/v1/search", params={"q": "jaringan", "grade": "kelas_12"}, headers=auth(key)
    )
    assert response.json() == {"results": []}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"q": "x", "k": 0}, "greater than or equal to 1"),
        ({"q": "x", "k": 51}, "less than or equal to 50"),
        ({"q": "x", "mode": "fuzzy"}, "hybrid"),
        ({"q": "x" * 501}, "at most 500 characters"),
        ({"q": "   "}, "the question is empty"),
        ({}, "Field required"),
        ({"q": "x", "grade": "Kelas-10"}, "'kelas_10'"),
        ({"q": "x", "subject": "../etc"}, "subject '../etc' is not allowed"),
    ],
)
def test_bad_search_parameters_get_422_with_a_clear_message(client, key, engine, params, says):
    before = query_count(engine)
    response = client.get("/v1/search", params=params, headers=auth(key))
    assert response.status_code == 422
    assert says in json.dumps(response.json())
    assert query_count(engine) == before  # refused before searching


# --- documents, PDFs, packages ----------------------------------------------------------------
def test_documents_list_the_catalogue_without_server_paths(client, book, key, tmp_path):
    response = client.get("/v1/documents", headers=auth(key))
    [doc] = response.json()["documents"]
    assert doc["grade"] == "kelas_10" and doc["subject"] == "informatika"
    assert (doc["file"], doc["pages"], doc["status"]) == ("bab1.pdf", 3, "ingested")
    assert doc["chunks"] >= 3 and doc["updated"]
    assert doc["pdf"] == f"/v1/documents/{doc['id']}/pdf"
    assert str(tmp_path) not in response.text
    filtered = client.get("/v1/documents", params={"subject": "biologi"}, headers=auth(key))
    assert filtered.json() == {"documents": []}


def test_the_pdf_is_served_with_its_bytes(client, book, key):
    [doc] = client.get("/v1/documents", headers=auth(key)).json()["documents"]
    response = client.get(doc["pdf"], headers=auth(key))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == "inline; filename*=UTF-8''bab1.pdf"
    assert response.content == book.read_bytes()


def test_a_panel_link_opens_its_one_pdf_for_a_while_without_a_key(client, engine, book, key):
    """The panel (logged in) makes links a browser can open at a page; the token is bound to
    the document and expires."""
    import time as clock

    from engine.api.links import LINK_TTL_S, pdf_api_link

    [doc] = client.get("/v1/documents", headers=auth(key)).json()["documents"]
    [document] = engine.catalog.all()
    link = pdf_api_link(engine.settings, document, 2)
    path, _, fragment = link.partition("#")
    assert fragment == "page=2" and "?t=" in path
    url = path[path.index("/v1/") :]
    opened = client.get(url)  # no Authorization header: the browser's request
    assert opened.status_code == 200 and opened.content == book.read_bytes()

    assert client.get(doc["pdf"]).status_code == 401  # without a token, a key is still needed
    token = url.partition("?t=")[2]
    other = url.replace(doc["id"], "0123456789abcdef")
    assert client.get(other).status_code == 401  # the token opens only its document
    forged = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert client.get(forged).status_code == 401
    from engine.api.links import check_pdf_token

    keys = engine.settings.data_dir / "keys"
    assert check_pdf_token(keys, doc["id"], token)
    assert not check_pdf_token(keys, doc["id"], token, now=clock.time() + LINK_TTL_S + 1)


def test_unknown_ids_and_vanished_files_are_404(client, book, key):
    [doc] = client.get("/v1/documents", headers=auth(key)).json()["documents"]
    for url in ("/v1/documents/0123456789abcdef/pdf", "/v1/documents/..%2F..%2Fetc/pdf"):
        assert client.get(url, headers=auth(key)).status_code == 404
    book.unlink()
    assert client.get(doc["pdf"], headers=auth(key)).status_code == 404


def test_catalogued_files_outside_the_inbox_are_never_served(client, engine, inbox, key, tmp_path):
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"%PDF-1.7 not for pupils")
    link = inbox / "kelas_10" / "informatika" / "link.pdf"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    for path in (link, secret):
        engine.catalog.put(
            Document(str(path), "kelas_10", "informatika", path.name, "0" * 64, 1, "ingested")
        )

    documents = client.get("/v1/documents", headers=auth(key)).json()["documents"]
    assert len(documents) == 2
    for doc in documents:
        url = doc["pdf"] or f"/v1/documents/{doc['id']}/pdf"
        response = client.get(url, headers=auth(key))
        assert response.status_code == 404
        assert b"not for pupils" not in response.content


def test_packages_list_installed_packages_like_vkp_list(client, engine, key):
    assert client.get("/v1/packages", headers=auth(key)).json() == {"packages": {}}
    with engine.database.write() as conn:
        conn.execute(
            "INSERT INTO vkp_installed VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("kelas_10__informatika", "informatika", "kelas_10", "1.2.0", "c", None, None, "t"),
        )
    packages = client.get("/v1/packages", headers=auth(key)).json()["packages"]
    assert packages["kelas_10__informatika"]["version"] == "1.2.0"
    assert set(packages["kelas_10__informatika"]) >= {"grade", "subject", "installed_at"}


def test_openapi_lists_every_endpoint_and_the_bearer_scheme(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/health",
        "/v1/search",
        "/v1/documents",
        "/v1/documents/{doc_id}/pdf",
        "/v1/packages",
    }
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "security" not in spec["paths"]["/v1/health"]["get"]
    assert spec["paths"]["/v1/search"]["get"]["security"] == [{"ApiKey": []}]


# --- the CLI ---------------------------------------------------------------------------------
def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = nexus(list(args))
    return code, capsys.readouterr().out


def test_api_keys_through_the_cli(capsys, settings, engine):
    code, out = run_cli(capsys, "admin", "api-key", "create", "lab-pc-3", "--json")
    created = json.loads(out)
    assert code == 0 and created["name"] == "lab-pc-3" and created["key"].startswith("nxs_")
    assert created["key"] not in (settings.data_dir / "api_keys.db").read_bytes().decode("latin-1")
    assert run_cli(capsys, "admin", "api-key", "create", "lab-pc-3")[0] == 1  # exists
    assert run_cli(capsys, "admin", "api-key", "create", "../x")[0] == 1  # bad name

    TestClient(create_app(engine)).get("/v1/packages", headers=auth(created["key"]))
    code, out = run_cli(capsys, "admin", "api-key", "list", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "lab-pc-3" and listed["created"] and listed["last_used"]
    assert created["key"] not in out

    code, out = run_cli(capsys, "admin", "api-key", "revoke", "lab-pc-3", "--json")
    assert code == 0 and json.loads(out) == {"name": "lab-pc-3", "revoked": True}
    assert run_cli(capsys, "admin", "api-key", "revoke", "lab-pc-3")[0] == 1
    assert json.loads(run_cli(capsys, "admin", "api-key", "list", "--json")[1]) == []


# --- over a real socket -----------------------------------------------------------------------
def get(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=auth(key) if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_nexus_serve_answers_over_a_socket_and_stops_on_sigterm(book, key, monkeypatch):
    port = free_port()
    with BedrockStub() as stub:  # no model to load in the server
        monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url)
        server = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    status, body = get(f"{base}/v1/health")
                    break
                except OSError:
                    assert server.poll() is None, server.communicate()[1]
                    assert time.monotonic() < deadline, "the API did not come up"
                    time.sleep(0.2)
            assert status == 200 and body["status"] == "ok"

            assert get(f"{base}/v1/search?q=jaringan")[0] == 401
            status, body = get(f"{base}/v1/search?q=jaringan+nomor+311&k=2", key)
            assert status == 200
            assert body["results"][0]["source"] == "bab1.pdf"
            assert body["results"][0]["page"] == 3
        finally:
            server.send_signal(signal.SIGTERM)
            _, stderr = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit says how it ended
    assert server.returncode in (0, -signal.SIGTERM), stderr
    assert "Finished server process" in stderr
    assert "jaringan" not in stderr  # no question in the server's logs


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8600"),
        ("::", "http://127.0.0.1:8600"),
        ("", "http://127.0.0.1:8600"),
        ("::1", "http://[::1]:8600"),
        ("192.168.1.5", "http://192.168.1.5:8600"),
    ],
)
def test_the_local_api_url_is_one_function_for_every_listening_address(address, url, settings):
    from engine.runtime.probes import api_url
    from engine.util import local_url

    assert local_url(address, 8600) == url
    assert api_url(settings.model_copy(update={"api_address": address})) == url


def test_the_running_engine_publishes_a_loopback_url_when_it_listens_everywhere(engine, settings):
    """`nexus search` reads this file; `http://:::8600` would make it search in-process."""
    from engine.api.local import ApiServer, api_file

    server = ApiServer(
        settings.model_copy(update={"api_address": "0.0.0.0"}), lambda: engine, port=free_port()
    )
    url = server.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert json.loads(api_file(settings).read_text())["url"] == url
        with urllib.request.urlopen(f"{url}/v1/health", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.stop()


def test_the_api_listens_only_once_its_engine_is_built(engine, book, settings, monkeypatch):
    """The panel's health probe gives up after 0.5 s: if the first request built the engine
    (loading a model takes seconds on a busy server) the panel would show a running API as
    Off, and the first question would wait for the encoder to load. A start-up that cannot
    build its engine fails instead of answering 500s."""
    from engine.api.local import ApiServer, api_file
    from engine.runtime.probes import api_status

    built = []
    warmed = []
    monkeypatch.setattr(engine.embedder, "warm", lambda: warmed.append(len(built)))

    def slow_factory():
        time.sleep(1.0)  # reading the catalogue, opening Chroma
        built.append(engine)
        return engine

    port = free_port()
    server = ApiServer(settings, slow_factory, port=port)
    server.start()
    try:
        assert built == [engine] and warmed == [1]  # before any request, encoder after engine
        libraries = engine.lexical.postings._libraries
        assert libraries and set(libraries) == set(engine.lexical.libraries())  # BM25 arrays
        assert api_status(settings.model_copy(update={"api_port": port}))
    finally:
        server.stop()

    def broken():
        raise RuntimeError("no model")

    api_file(settings).unlink(missing_ok=True)
    with pytest.raises(RuntimeError, match="did not start"):
        ApiServer(settings, broken, port=free_port()).start(timeout_s=10)
    assert not api_file(settings).exists()


def test_an_api_too_slow_to_start_is_stopped_not_left_listening(engine, settings):
    """`nexus up` gives the API 30 s and goes on without it: the server must not start
    listening afterwards with no api.json and nobody to stop it."""
    from engine.api.local import ApiServer, api_file

    def slower_than_the_timeout():
        time.sleep(1.5)
        return engine

    port = free_port()
    server = ApiServer(settings, slower_than_the_timeout, port=port)
    with pytest.raises(RuntimeError, match="did not start"):
        server.start(timeout_s=0.3)
    server.thread.join(timeout=10)
    assert not server.thread.is_alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2)
    assert not api_file(settings).exists()


def test_an_encoder_that_cannot_load_at_start_up_does_not_stop_the_api(engine, settings):
    """Warming the encoder is a head start, not a new way to fail: each search reports the
    problem as it did before."""
    from engine.api.local import ApiServer

    def broken_warm():
        raise RuntimeError("weights.npz differs from its pinned digest")

    engine.embedder.warm = broken_warm
    server = ApiServer(settings, lambda: engine, port=free_port())
    url = server.start()
    try:
        with urllib.request.urlopen(f"{url}/v1/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.stop()


def test_a_hit_names_a_document_added_after_earlier_searches(client, engine, inbox, book, key):
    """The document map is kept between searches and rebuilt when the catalogue changes."""
    first = client.get("/v1/search?q=jaringan", headers=auth(key)).json()["results"]
    assert first and first[0]["document_id"]
    pdfs.text_pdf(inbox / "kelas_10" / "biologi" / "sel.pdf", ["Mitokondria menghasilkan ATP."])
    engine.ingestor.run([inbox], inbox)
    [hit] = client.get(
        "/v1/search?q=mitokondria ATP&k=1&subject=biologi", headers=auth(key)
    ).json()["results"]
    [document] = [d for d in engine.catalog.all() if d.file_name == "sel.pdf"]
    assert hit["source"] == "sel.pdf" and hit["document_id"] == document_id(document)


def test_a_class_of_concurrent_searches_all_get_their_answers(engine, book, key, settings):
    """16 clients at once over a real socket, searches running side by side: every one gets
    its own right answer."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.api.local import ApiServer

    server = ApiServer(settings, lambda: engine, port=free_port())
    url = server.start()
    try:

        def ask(n: int) -> tuple[int, str]:
            request = urllib.request.Request(
                f"{url}/v1/search?q=jaringan&k=3&grade=kelas_10", headers=auth(key)
            )
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())["results"][0]["source"]

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(48)))
    finally:
        server.stop()
    assert answers == [(200, "bab1.pdf")] * 48
