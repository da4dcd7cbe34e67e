"""The Lambda processor, driven by a real S3 event shape captured through moto (SQS), and its
deployment. moto cannot run a Lambda without Docker, so the handler is called directly."""

from __future__ import annotations

import json

import boto3
import pytest

from engine.cloud.admin import setup
from engine.settings import Settings
from tests.support import pdfs
from tests.support.aws import all_keys
from tests.support.cli import nexus

BUCKET = "openclass-nexus-ai"


def capture_s3_events(key_prefix: str = "raw-curriculum/") -> str:
    """Route the bucket's ObjectCreated notifications to an SQS queue; return its URL."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("s3", region_name="us-east-1").put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": key_prefix}]}},
                }
            ]
        },
    )
    return queue_url


def received_events(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def sns_to_sqs(monkeypatch) -> str:
    sns, sqs = (
        boto3.client("sns", region_name="us-east-1"),
        boto3.client("sqs", region_name="us-east-1"),
    )
    topic = sns.create_topic(Name="nexus-processed")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    monkeypatch.setenv("SNS_TOPIC_ARN", topic)
    return queue_url


@pytest.mark.slow
def test_handler_processes_uploads_from_real_s3_events(aws, bedrock, monkeypatch, tmp_path):
    from engine.cloud.lambda_handler import handler

    setup(Settings())
    events_queue = capture_s3_events()
    notifications = sns_to_sqs(monkeypatch)
    s3 = boto3.client("s3", region_name="us-east-1")
    first = pdfs.text_pdf(
        tmp_path / "src" / "bab 1.pdf", ["Algoritma adalah urutan langkah logis."]
    )
    s3.upload_file(str(first), BUCKET, "raw-curriculum/kelas_10/informatika/bab 1.pdf")

    events = received_events(events_queue)
    records = [e for e in events if "Records" in e]
    assert records, events
    key_in_event = records[0]["Records"][0]["s3"]["object"]["key"]
    assert key_in_event != "raw-curriculum/kelas_10/informatika/bab 1.pdf"  # URL-encoded by S3
    for test_event in (e for e in events if e.get("Event") == "s3:TestEvent"):
        assert handler(test_event)["status"] == "ignored"

    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path / "lambda-1"))  # a cold Lambda's /tmp
    result = handler(records[0], None)

    assert [(f["status"], f["chunks"]) for f in result["files"]] == [("ingested", 1)]
    prefix = "processed/informatika/kelas_10"
    assert f"{prefix}/text/bab 1.txt" in all_keys(BUCKET)
    message = received_events(notifications)[0]
    assert json.loads(message["Message"])["files"][0]["key"].endswith("bab 1.pdf")

    # a second upload, on another cold Lambda: the subject's export holds both files
    second = pdfs.text_pdf(
        tmp_path / "src" / "bab2.pdf", ["Jaringan komputer menghubungkan perangkat."]
    )
    s3.upload_file(str(second), BUCKET, "raw-curriculum/kelas_10/informatika/bab2.pdf")
    [event] = [e for e in received_events(events_queue) if "Records" in e]
    monkeypatch.setenv("NEXUS_DATA_DIR", str(tmp_path / "lambda-2"))
    assert handler(event)["files"][0]["status"] == "ingested"
    export = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{prefix}/chromadb/titan-embed-text-v2-1024.json")[
            "Body"
        ].read()
    )
    assert sorted({m["source"] for m in export["metadatas"]}) == ["bab 1.pdf", "bab2.pdf"]
    summary = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{prefix}/metadata/summary.json")["Body"].read()
    )
    assert summary["files"] == 2


def test_handler_refuses_keys_outside_the_layout(aws, bedrock):
    from engine.cloud.lambda_handler import handler

    event = {
        "Records": [
            {"s3": {"bucket": {"name": BUCKET}, "object": {"key": "raw-curriculum/lepas.pdf"}}}
        ]
    }
    [result] = handler(event)["files"]
    assert result["status"] == "bad_location" and "<grade>/<subject>" in result["reason"]


def test_deploy_lambda_creates_then_updates_and_wires_the_bucket(aws, monkeypatch):
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(
        RoleName="nexus-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ]
            }
        ),
    )["Role"]["Arn"]
    monkeypatch.setenv("LAMBDA_FUNCTION_NAME", "nexus-processor")
    monkeypatch.setenv("LAMBDA_ROLE_ARN", role)
    setup(Settings())

    def deploy() -> dict:
        return json.loads(nexus("aws", "deploy-lambda", "--json").stdout)

    first, second = deploy(), deploy()

    assert (first["action"], second["action"]) == ("created", "updated")
    config = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
        FunctionName="nexus-processor"
    )
    assert (config["Timeout"], config["MemorySize"]) == (900, 3008)
    assert config["Handler"] == "engine.cloud.lambda_handler.handler"
    assert config["Environment"]["Variables"]["EMBEDDING_STRATEGY"] == "bedrock"
    notification = boto3.client(
        "s3", region_name="us-east-1"
    ).get_bucket_notification_configuration(Bucket=BUCKET)
    [wired] = notification["LambdaFunctionConfigurations"]
    assert wired["LambdaFunctionArn"] == first["function_arn"]
    rules = {r["Name"].lower(): r["Value"] for r in wired["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "raw-curriculum/", "suffix": ".pdf"}
    assert first["package_bytes"] > 10_000


def _event(key: str) -> dict:
    from urllib.parse import quote_plus

    return {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key)}}}]}


@pytest.mark.slow
def test_concurrent_uploads_to_one_subject_all_end_up_published(aws, bedrock, tmp_path):
    """8 uploads to each of two subjects, each on its own cold "Lambda", all at once: the
    per-subject lease serialises each subject, so no publish drops another's document."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.cloud.lambda_handler import handler

    setup(Settings())
    s3 = boto3.client("s3", region_name="us-east-1")
    uploads = []
    for subject in ("informatika", "biologi"):
        for n in range(8):
            pdf = pdfs.text_pdf(
                tmp_path / "src" / subject / f"bab{n}.pdf",
                [f"Materi {subject} bab {n}: pokok bahasan nomor {n} untuk kelas sepuluh."],
            )
            key = f"raw-curriculum/kelas_10/{subject}/bab{n}.pdf"
            s3.upload_file(str(pdf), BUCKET, key)
            uploads.append((subject, n, key))

    def process(upload) -> dict:
        subject, n, key = upload
        settings = Settings(NEXUS_DATA_DIR=str(tmp_path / "lambda" / f"{subject}-{n}"))
        return handler(_event(key), None, settings=settings)

    with ThreadPoolExecutor(len(uploads)) as pool:
        results = list(pool.map(process, uploads))

    assert all(r["files"][0]["status"] == "ingested" for r in results), results
    for subject in ("informatika", "biologi"):
        prefix = f"processed/{subject}/kelas_10"
        export = json.loads(
            s3.get_object(Bucket=BUCKET, Key=f"{prefix}/chromadb/titan-embed-text-v2-1024.json")[
                "Body"
            ].read()
        )
        assert sorted({m["source"] for m in export["metadatas"]}) == [
            f"bab{n}.pdf" for n in range(8)
        ]
    leases = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="NexusLocks")
    assert leases["Items"] == []  # every lease was given back


@pytest.mark.parametrize(
    "key",
    [
        "raw-curriculum/../../etc/x.pdf",
        "raw-curriculum/kelas_10/informatika/../../../../tmp/evil.pdf",
        "raw-curriculum/kelas-10/informatika/bab1.pdf",
        "raw-curriculum/kelas_10/informatika//bab1.pdf",
        "raw-curriculum/kelas_10/informatika/.hidden.pdf",
        "raw-curriculum/kelas_10/informatika/~$bab1.pdf",
        "raw-curriculum/kelas_10/informatika/.git/x.pdf",
        "raw-curriculum/kelas_10/informatika/" + "bab" * 100 + ".pdf",  # over NAME_MAX
        "raw-curriculum/kelas_10/informatika/" + "bab" * 100 + "/x.pdf",
    ],
)
def test_handler_refuses_keys_that_escape_the_inbox_or_break_the_names(aws, bedrock, key):
    from engine.cloud.lambda_handler import handler

    [result] = handler(_event(key))["files"]
    assert result["status"] == "bad_location", result


def test_a_lease_is_exclusive_until_released_or_expired(aws):
    from engine.aws.clients import client
    from engine.aws.lease import LeaseTimeout, SubjectLease

    setup(Settings())
    now = [1000.0]
    leases = SubjectLease(
        client(Settings(), "dynamodb"), "NexusLocks", ttl_s=60, clock=lambda: now[0]
    )
    assert leases.try_acquire("kelas_10__informatika", "lambda-a")
    assert not leases.try_acquire("kelas_10__informatika", "lambda-b")
    assert leases.try_acquire("kelas_10__biologi", "lambda-b")  # other subjects run in parallel
    with pytest.raises(LeaseTimeout):
        with leases.hold("kelas_10__informatika", wait_s=0.3, poll_s=0.05):
            pass
    now[0] += 61  # lambda-a crashed: its lease expires
    assert leases.try_acquire("kelas_10__informatika", "lambda-b")
    assert not leases.renew("kelas_10__informatika", "lambda-a")
    leases.release("kelas_10__informatika", "lambda-a")  # not ours any more: kept
    assert not leases.try_acquire("kelas_10__informatika", "lambda-c")
    leases.release("kelas_10__informatika", "lambda-b")
    assert leases.try_acquire("kelas_10__informatika", "lambda-c")


def test_deploy_lambda_with_a_container_image(aws, monkeypatch):
    from engine.cloud.admin import deploy_lambda

    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="nexus-image", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.setenv("LAMBDA_FUNCTION_NAME", "nexus-image")
    monkeypatch.setenv("LAMBDA_ROLE_ARN", role)
    setup(Settings())
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/openclass-nexus:lambda"
    first = deploy_lambda(Settings(), image_uri=uri)
    second = deploy_lambda(Settings(), image_uri=uri + "-2")
    assert (first["action"], first["package_type"]) == ("created", "Image")
    assert second["action"] == "updated"
    function = boto3.client("lambda", region_name="us-east-1").get_function(
        FunctionName="nexus-image"
    )
    assert function["Configuration"]["PackageType"] == "Image"
    assert function["Code"]["ImageUri"] == uri + "-2"
    env = function["Configuration"]["Environment"]["Variables"]
    assert env["DYNAMODB_LOCKS_TABLE"] == "NexusLocks"


def test_an_upload_whose_name_fills_the_file_system_limit_is_processed(aws, bedrock, tmp_path):
    """255 bytes of UTF-8: boto3's own temporary name would not fit, so the handler downloads
    to a short name first; no OSError ever leaves the handler."""
    from engine.cloud.lambda_handler import handler

    setup(Settings())
    name = "漢" * 83 + "xx.pdf"
    assert len(name.encode()) == 255
    key = f"raw-curriculum/kelas_10/informatika/{name}"
    pdf = pdfs.text_pdf(tmp_path / "src" / "bab.pdf", ["Algoritma adalah urutan langkah."])
    boto3.client("s3", region_name="us-east-1").upload_file(str(pdf), BUCKET, key)
    settings = Settings(NEXUS_DATA_DIR=str(tmp_path / "lambda"))
    [result] = handler(_event(key), None, settings=settings)["files"]
    assert result["status"] == "ingested", result
    folder = settings.data_dir / "inbox" / "kelas_10" / "informatika"
    assert [p.name for p in folder.iterdir()] == [name]  # no partial download left behind


def test_the_lambda_zip_holds_the_engine_package_where_the_handler_names_it():
    """Lambda imports HANDLER from the zip's root: `engine/cloud/lambda_handler.py` must be
    there, and nothing from outside the package (tests, benches) may ride along."""
    import io
    import zipfile

    from engine.cloud.admin import HANDLER, build_package

    names = zipfile.ZipFile(io.BytesIO(build_package())).namelist()
    module = HANDLER.rpartition(".")[0].replace(".", "/") + ".py"
    assert module in names and "engine/__init__.py" in names
    assert all(n.startswith("engine/") for n in names)
    assert not [n for n in names if n.startswith(("engine/tests/", "engine/engine/"))]
