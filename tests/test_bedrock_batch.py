"""Bedrock batch inference for large uploads, over real HTTP: moto's S3 holds the JSONL, a local
control-plane endpoint runs the job, and the InvokeModel stub embeds what the job failed."""

from __future__ import annotations

import json

import boto3
import pytest
from pydantic import ValidationError

from devtools import bedrock_batch_stub
from devtools.bedrock_batch_stub import BedrockBatchStub
from devtools.bedrock_stub import hashed_vector, token_count
from engine.app import build_engine
from engine.embed.base import EmbeddingUnavailable
from engine.embed.build import bedrock_embedder
from engine.settings import Settings
from tests.support import pdfs

BUCKET = "openclass-nexus-ai"


class Killed(BaseException):
    """Stands for the process being killed while it waits."""


@pytest.fixture
def batch(aws, bedrock, monkeypatch):
    boto3.client("s3", endpoint_url=aws, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    with BedrockBatchStub(aws, polls_in_progress=2) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", stub.url)
        monkeypatch.setenv("BEDROCK_BATCH_MIN_CHUNKS", "10")
        monkeypatch.setenv("BEDROCK_BATCH_ROLE_ARN", "arn:aws:iam::123456789012:role/batch")
        monkeypatch.setenv("BEDROCK_BATCH_POLL_S", "0.05")
        monkeypatch.setenv("S3_PREFIX", "nexus")
        yield stub


def texts(n: int = 30) -> list[str]:
    return [f"kalimat nomor {i} tentang jaringan komputer." for i in range(n)]


def state_files(settings: Settings) -> list:
    folder = settings.data_dir / "bedrock-batch"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_a_large_call_is_one_batch_job_with_the_same_vectors_as_invoke_model(batch, bedrock):
    settings = Settings()
    result = bedrock_embedder(settings).embed(texts(), progress=(reported := []).append)

    assert batch.jobs_created == 1 and bedrock.requests == 0
    assert reported == [30]
    direct = bedrock_embedder(Settings(BEDROCK_BATCH_MIN_CHUNKS=0)).embed(texts())
    assert bedrock.requests == 30
    assert result.vectors == direct.vectors  # in input order, though the output was not
    assert result.input_tokens == direct.input_tokens == sum(map(token_count, texts()))
    assert state_files(settings) == []
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(
        k.startswith("nexus/bedrock-batch/") and k.endswith("input/records.jsonl") for k in keys
    )
    assert any(k.endswith("/records.jsonl.out") for k in keys)


def test_a_small_call_stays_on_invoke_model(batch, bedrock):
    result = bedrock_embedder(Settings()).embed(texts(9))
    assert len(result.vectors) == 9
    assert batch.jobs_created == 0 and bedrock.requests == 9


def test_a_restart_resumes_waiting_for_the_same_job(batch):
    settings = Settings()
    first = bedrock_embedder(settings)

    def killed(seconds: float) -> None:
        raise Killed

    first.batch._sleep = killed
    with pytest.raises(Killed):
        first.embed(texts())
    [state] = state_files(settings)
    assert json.loads(state.read_text())["job_arn"].startswith("arn:aws:bedrock:")
    assert batch.jobs_created == 1

    result = bedrock_embedder(settings).embed(texts())  # the next process runs the same ingest

    assert batch.jobs_created == 1  # the same job, not a second one
    assert result.vectors[5] == hashed_vector(texts()[5], 1024)
    assert state_files(settings) == []


def test_a_kill_before_bedrock_answered_resends_the_same_request(batch, monkeypatch):
    settings = Settings()
    first = bedrock_embedder(settings)
    create = first.batch.bedrock.create_model_invocation_job

    def create_then_die(**request):
        create(**request)
        raise Killed  # the job exists, its ARN never reached the state file

    monkeypatch.setattr(first.batch.bedrock, "create_model_invocation_job", create_then_die)
    with pytest.raises(Killed):
        first.embed(texts())
    [state] = state_files(settings)
    assert "job_arn" not in json.loads(state.read_text())

    result = bedrock_embedder(settings).embed(texts())

    assert batch.jobs_created == 1  # the client request token named the same job
    assert len(result.vectors) == 30 and state_files(settings) == []


def test_failed_records_are_embedded_one_by_one(batch, bedrock):
    batch.fail_texts = {texts()[3], texts()[17]}
    result = bedrock_embedder(Settings()).embed(texts())

    assert batch.jobs_created == 1 and bedrock.requests == 2
    assert result.vectors == [hashed_vector(t, 1024) for t in texts()]
    assert result.input_tokens == sum(map(token_count, texts()))


def test_a_failed_job_is_reported_with_its_reason(batch):
    batch.fail_job = "the role cannot read the input"
    settings = Settings()
    with pytest.raises(EmbeddingUnavailable, match="failed: the role cannot read the input"):
        bedrock_embedder(settings).embed(texts())
    assert state_files(settings) == []


def test_output_of_the_wrong_shape_is_refused(batch, monkeypatch):
    monkeypatch.setattr(bedrock_batch_stub, "hashed_vector", lambda *args: [0.5] * 3)
    with pytest.raises(EmbeddingUnavailable, match="not a vector of 1024 numbers"):
        bedrock_embedder(Settings()).embed(texts())


def test_a_bulk_ingest_goes_through_one_job(batch, bedrock, inbox, monkeypatch):
    monkeypatch.setenv("BEDROCK_BATCH_MIN_CHUNKS", "3")
    engine = build_engine(Settings(CHUNK_SIZE=200, CHUNK_OVERLAP=0))
    pages = pdfs.lesson_pages("jaringan", pages=4)
    pdfs.text_pdf(inbox / "kelas_10" / "informatika" / "bab1.pdf", pages)

    outcome = engine.ingestor.run([inbox], inbox)

    assert outcome.job.status == "completed" and outcome.job.total_embeddings >= 3
    assert batch.jobs_created == 1 and bedrock.requests == 0
    assert outcome.job.input_tokens > 0
    [hit] = engine.searcher.search("belajar tentang jaringan nomor 205", k=1)
    assert "nomor 205." in hit.text


def test_batch_needs_a_role(monkeypatch):
    monkeypatch.setenv("BEDROCK_BATCH_MIN_CHUNKS", "1000")
    with pytest.raises(ValidationError, match="BEDROCK_BATCH_ROLE_ARN"):
        Settings()
