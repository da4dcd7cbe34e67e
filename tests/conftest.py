"""Shared fixtures: every test gets its own data dir, and the real model loads once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.app import build_engine
from engine.settings import Settings
from tests.support.fakes import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def env_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every data path at a tmp dir; no real AWS; no .env from the developer's checkout."""
    data = tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("AWS_", "NEXUS_", "BEDROCK_", "CHROMA_")) or name in (
            "EMBEDDING_STRATEGY",
            "FALLBACK_ENABLED",
            "LOCAL_EMBEDDING_MODEL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEXUS_DATA_DIR", str(data))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WATCH_STABLE_SECONDS", "0.5")
    return data


@pytest.fixture
def settings(env_setup: Path) -> Settings:
    return Settings()


@pytest.fixture
def inbox(settings: Settings) -> Path:
    settings.inbox_dir.mkdir(parents=True, exist_ok=True)
    return settings.inbox_dir


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def engine(settings: Settings, fake_embedder: FakeEmbedder):
    """An engine with the fake embedder and embedded Chroma in the tmp data dir."""
    return build_engine(settings, embedder=fake_embedder)


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2, loaded once per test session."""
    from engine.embed.local import LocalEmbedder

    embedder = LocalEmbedder(device="cpu")
    embedder.load()
    return embedder


@pytest.fixture(scope="session")
def multilingual():
    """The packaged multilingual USE v3 (LOCAL_EMBEDDING_MODEL=use-multilingual-v3), loaded once."""
    from engine.embed.multilingual import MultilingualEmbedder

    embedder = MultilingualEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(scope="session")
def moto_server():
    """moto's AWS on 127.0.0.1 (real HTTP), shared by the session and reset per test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server._server.server_address
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """Point boto3 at moto's server, reset it, and switch the AWS features on."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("S3_BUCKET_NAME", "openclass-nexus-ai")
    monkeypatch.setenv("DYNAMODB_JOBS_TABLE", "ETLPipelineJobs")
    return moto_server


@pytest.fixture
def bedrock(monkeypatch):
    """Embeddings from the local InvokeModel endpoint (moto's bedrock-runtime has no body)."""
    from devtools.bedrock_stub import BedrockStub

    with BedrockStub() as stub:
        monkeypatch.setenv("EMBEDDING_STRATEGY", "bedrock")
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", stub.url)
        monkeypatch.setenv("BEDROCK_MAX_RPM", "0")  # the stub has no quota
        yield stub


@pytest.fixture(params=["id", "en"])
def lang(request, monkeypatch):
    """The panel's language, once in Indonesian and once in English (the browser tests)."""
    monkeypatch.setenv("UI_LANGUAGE", request.param)
    return request.param
