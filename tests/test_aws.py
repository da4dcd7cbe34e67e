"""The AWS control plane over real HTTP against moto's server (and the local Bedrock endpoint)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from engine.app import build_engine
from engine.cloud.admin import setup
from engine.settings import Settings
from tests.support import pdfs
from tests.support.aws import all_keys, create_distribution, invalidated_paths
from tests.support.cli import nexus
from tests.support.net import closed_port_url

BUCKET = "openclass-nexus-ai"
PREFIX = "processed/informatika/kelas_10"


def lesson_inbox(inbox: Path) -> Path:
    subject = inbox / "kelas_10" / "informatika"
    pdfs.text_pdf(
        subject / "bab1.pdf", ["Algoritma adalah urutan langkah.", "Diagram alir memakai simbol."]
    )
    pdfs.text_pdf(subject / "bab2.pdf", ["Jaringan komputer LAN dan WAN."])
    pdfs.encrypted_pdf(subject / "kunci.pdf")
    return inbox


@pytest.mark.slow
def test_ingest_with_upload_publishes_layout_job_cost_and_invalidation(
    aws, bedrock, inbox, monkeypatch
):
    print(nexus("aws", "setup").stdout)
    distribution = create_distribution(BUCKET)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", distribution)
    lesson_inbox(inbox)

    summary = json.loads(nexus("ingest", str(inbox), "--upload", "--json").stdout)

    assert summary["status"] == "partial" and summary["publish"]["pending"] == 0
    keys = all_keys(BUCKET)
    assert keys == sorted(
        [
            f"{PREFIX}/text/bab1.txt",
            f"{PREFIX}/text/bab2.txt",
            f"{PREFIX}/metadata/summary.json",
            f"{PREFIX}/metadata/quality_report.json",
            f"{PREFIX}/chromadb/titan-embed-text-v2-1024.json",
        ]
    )
    s3 = boto3.client("s3", region_name="us-east-1")

    def get(key: str) -> bytes:
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    assert get(f"{PREFIX}/text/bab1.txt").decode().split("\f")[1].startswith("Diagram alir")
    report = json.loads(get(f"{PREFIX}/metadata/quality_report.json"))
    assert [(f["file"], f["status"]) for f in report["failures"]] == [("kunci.pdf", "encrypted")]
    summary_json = json.loads(get(f"{PREFIX}/metadata/summary.json"))
    assert (summary_json["files"], summary_json["chunks"]) == (2, 2)
    export = json.loads(get(f"{PREFIX}/chromadb/titan-embed-text-v2-1024.json"))
    assert len(export["ids"]) == 2 and len(export["embeddings"][0]) == 1024
    assert {m["source"] for m in export["metadatas"]} == {"bab1.pdf", "bab2.pdf"}
    head = s3.head_object(
        Bucket=BUCKET, Key=f"{PREFIX}/metadata/summary.json", ChecksumMode="ENABLED"
    )
    assert head["Metadata"]["sha256"] and head.get("ChecksumSHA256")

    # the job and its cost are in DynamoDB, found through the by_day index
    table = boto3.resource("dynamodb", region_name="us-east-1").Table("ETLPipelineJobs")
    from boto3.dynamodb.conditions import Key

    day = time.strftime("%Y-%m-%d", time.gmtime())
    [job] = table.query(IndexName="by_day", KeyConditionExpression=Key("job_day").eq(day))["Items"]
    assert job["job_id"] == summary["job_id"] and job["status"] == "partial"
    assert job["input_tokens"] > 0 and job["estimated_cost"] > 0
    files = table.query(KeyConditionExpression=Key("job_id").eq(job["job_id"]))["Items"]
    assert sorted(i["status"] for i in files if i["kind"] == "file") == [
        "encrypted",
        "ingested",
        "ingested",
    ]

    # one CloudFront invalidation covers every published path
    assert invalidated_paths(distribution) == sorted("/" + k for k in keys)

    costs = json.loads(nexus("jobs", "costs", "--days", "7", "--json").stdout)
    assert costs["total_tokens"] == job["input_tokens"]
    assert costs["per_subject"]["kelas_10/informatika"] > 0
    assert costs["per_day"][-1]["jobs"] == 1 and len(costs["per_day"]) == 7

    # publishing again without changes re-uploads nothing and invalidates nothing new
    engine = build_engine(Settings())
    report = engine.publisher.publish("kelas_10", "informatika")
    assert report.sent == [] and len(report.unchanged) == 5


@pytest.mark.slow
def test_outage_fills_the_outbox_keeps_ingesting_and_a_flush_delivers(
    aws, bedrock, inbox, monkeypatch
):
    setup(Settings())
    lesson_inbox(inbox)
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_port_url())  # AWS is gone (Bedrock is not)
    monkeypatch.setenv("AWS_TIMEOUT_S", "1")

    started = time.monotonic()
    summary = json.loads(nexus("ingest", str(inbox), "--upload", "--json").stdout)
    assert time.monotonic() - started < 60

    assert summary["total_chunks"] == 2  # ingested locally all the same
    assert summary["publish"]["pending"] == 5 and summary["publish"]["error"]
    hits = json.loads(nexus("search", "algoritma langkah", "--json").stdout)
    assert hits[0]["source"] == "bab1.pdf"
    status_lines = {line.split()[0]: line for line in nexus("aws", "status").stdout.splitlines()}
    assert "UNREACHABLE" in status_lines["s3"] and "UNREACHABLE" in status_lines["dynamodb_jobs"]
    assert "not configured" in status_lines["lambda"]

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)  # AWS is back; a later run delivers everything
    flushed = json.loads(nexus("aws", "flush", "--json").stdout)

    assert flushed["pending"] == 0 and flushed["sent"] == 5 and flushed["jobs_synced"] >= 1
    assert len(all_keys(BUCKET)) == 5
    jobs = (
        boto3.resource("dynamodb", region_name="us-east-1").Table("ETLPipelineJobs").scan()["Items"]
    )
    assert summary["job_id"] in {j["job_id"] for j in jobs}
    assert list((Path(Settings().outbox_dir)).glob("*")) == []


def test_outbox_survives_a_restart(aws, settings):
    from engine.aws.s3 import Outbox, S3Store

    Outbox(settings.outbox_dir).stage_bytes("processed/x/y/metadata/a.json", b"{}")
    restarted = Outbox(settings.outbox_dir)  # a new process
    assert [r["key"] for r in restarted.pending()] == ["processed/x/y/metadata/a.json"]
    setup(settings)
    s3 = S3Store(boto3.client("s3", region_name="us-east-1"), BUCKET)
    assert restarted.flush(s3).sent == ["processed/x/y/metadata/a.json"]
    assert restarted.pending() == []


def test_large_files_go_up_in_parts(aws, settings, tmp_path):
    from engine.aws.s3 import S3Store

    setup(settings)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB
    s3 = S3Store(
        boto3.client("s3", region_name="us-east-1"), BUCKET, "nexus", multipart_threshold_mb=5
    )

    assert s3.put_file("vkp/big.vkp", big) is True
    head = boto3.client("s3", region_name="us-east-1").head_object(
        Bucket=BUCKET, Key="nexus/vkp/big.vkp"
    )
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: 3 parts of 5, 5, 2 MiB
    assert head["ContentLength"] == big.stat().st_size
    assert s3.put_file("vkp/big.vkp", big) is False  # unchanged: not uploaded again


def test_cloudfront_signed_url_verifies_with_the_public_key(tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from engine.aws.cloudfront import CloudFrontManager

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "cf.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    manager = CloudFrontManager(
        None,
        "E123",
        url="https://d111.cloudfront.net",
        key_pair_id="K2ABC",
        private_key_path=pem,
        url_expiry_s=600,
    )
    url = manager.signed_url("vkp/kelas_10__informatika__v1.0.0.vkp")

    parsed = urlparse(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    assert (
        parsed.path == "/vkp/kelas_10__informatika__v1.0.0.vkp" and query["Key-Pair-Id"] == "K2ABC"
    )
    assert 590 <= int(query["Expires"]) - time.time() <= 600
    condition = {"DateLessThan": {"AWS:EpochTime": int(query["Expires"])}}
    statement = {"Statement": [{"Resource": url.split("?")[0], "Condition": condition}]}
    policy = json.dumps(statement, separators=(",", ":"))  # CloudFront's canned policy
    signature = base64.b64decode(
        query["Signature"].replace("-", "+").replace("_", "=").replace("~", "/")
    )
    key.public_key().verify(
        signature, policy.encode(), padding.PKCS1v15(), hashes.SHA1()
    )  # raises if bad


def test_cloudfront_wait_accepts_motos_completed(aws):
    from engine.aws.cloudfront import CloudFrontManager

    distribution = create_distribution(BUCKET)
    manager = CloudFrontManager(boto3.client("cloudfront", region_name="us-east-1"), distribution)
    invalidation = manager.invalidate(["processed/a/b/x.json", "processed/a/b/x.json"])
    assert manager.wait(invalidation, timeout_s=10, poll_s=0.1).lower() == "completed"
    assert invalidated_paths(distribution) == ["/processed/a/b/x.json"]


def test_dynamodb_tracker_round_trips_jobs_files_and_days(aws, settings):
    from engine.aws.clients import dynamodb_table
    from engine.jobs.base import FileResult, FileStatus, JobRecord
    from engine.jobs.dynamodb import DynamoJobTracker

    setup(settings)
    tracker = DynamoJobTracker(dynamodb_table(settings, "ETLPipelineJobs"))
    jobs = []
    for i in range(3):
        jobs.append(JobRecord(job_type="ingest", input_dir=f"/in/{i}", estimated_cost=0.001 * i))
        time.sleep(0.01)  # distinct millisecond timestamps
    for job in jobs:
        job.tokens_by_subject = {"kelas_10/ipa": 100}
        tracker.save_job(job)
    tracker.save_file(jobs[0].job_id, FileResult("/in/a.pdf", FileStatus.ENCRYPTED, "password"))
    tracker.save_file(jobs[0].job_id, FileResult("/in/b.pdf", FileStatus.INGESTED, chunks=4))

    assert [j.job_id for j in tracker.list_jobs(2)] == [jobs[2].job_id, jobs[1].job_id]
    assert tracker.get_job(jobs[1].job_id).estimated_cost == pytest.approx(0.001)
    assert [(f.path, f.status) for f in tracker.job_files(jobs[0].job_id)] == [
        ("/in/a.pdf", FileStatus.ENCRYPTED),
        ("/in/b.pdf", FileStatus.INGESTED),
    ]
    assert [j.job_id for j in tracker.jobs_since(jobs[0].timestamp)] == [j.job_id for j in jobs]
    assert tracker.get_job(jobs[0].job_id).tokens_by_subject == {"kelas_10/ipa": 100}


def test_cost_summary_prices_tokens_per_region(settings):
    from engine.jobs.base import JobRecord
    from engine.jobs.costs import get_cost_summary
    from engine.jobs.sqlite import SqliteJobTracker

    tracker = SqliteJobTracker(settings.db_path)
    for tokens, subject in ((2_000_000, "kelas_10/ipa"), (500_000, "kelas_11/ips")):
        job = JobRecord(job_type="ingest", input_tokens=tokens, tokens_by_subject={subject: tokens})
        job.estimated_cost = tokens / 1000 * 0.00002
        tracker.save_job(job)

    summary = get_cost_summary(tracker, settings, days=30)

    assert summary["total_cost"] == pytest.approx(0.05)  # 2.5 M tokens at $0.02 per million
    assert summary["per_subject"] == {
        "kelas_10/ipa": pytest.approx(0.04),
        "kelas_11/ips": pytest.approx(0.01),
    }
    assert summary["per_day"][-1]["jobs"] == 2 and len(summary["per_day"]) == 30
    assert summary["monthly_run_rate"] == pytest.approx(0.05)
    assert summary["estimated_regions"] == []
    jakarta = Settings(BEDROCK_REGION="ap-southeast-3")
    assert get_cost_summary(tracker, jakarta, 7)["estimated_regions"] == ["ap-southeast-3"]


def test_status_reports_each_service_and_never_hangs(aws, monkeypatch, settings):
    from engine.cloud.admin import status

    setup(settings)
    monkeypatch.setenv("CLOUDFRONT_DISTRIBUTION_ID", create_distribution(BUCKET))
    result = status(Settings(), build_engine(Settings()))
    assert result["s3"]["reachable"] and result["cloudfront"]["reachable"]
    assert result["dynamodb_jobs"]["reachable"] and result["dynamodb_jobs"]["latency_ms"] >= 0
    assert result["lambda"]["configured"] is False and result["bedrock"]["configured"] is False

    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_port_url())
    monkeypatch.setenv("AWS_TIMEOUT_S", "1")
    started = time.monotonic()
    offline = status(Settings(), build_engine(Settings()))
    assert time.monotonic() - started < 20
    assert offline["s3"]["reachable"] is False and "Could not connect" in offline["s3"]["error"]
