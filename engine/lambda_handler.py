"""AWS Lambda entry point: an upload to `raw-curriculum/<grade>/<subject>/<file>.pdf` is
ingested by the same pipeline (Bedrock embeddings) and the grade/subject is published.

A Lambda starts with an empty /tmp, so before ingesting, the subject's published Chroma export
is loaded back (`Publisher.load_export`): the new export then holds the whole subject, not just
this file. Two uploads of one subject at the same moment race (the last publish wins); a
re-upload of either file repairs it.
"""

from __future__ import annotations

import json
import logging
import os
from urllib.parse import unquote_plus

from engine.app import build_engine
from engine.aws.clients import client
from engine.aws.control import RAW_PREFIX
from engine.settings import Settings

log = logging.getLogger(__name__)


def _records(event: dict) -> list[tuple[str, str]]:
    found = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        bucket, key = s3.get("bucket", {}).get("name"), s3.get("object", {}).get("key")
        if bucket and key:
            found.append((bucket, unquote_plus(key)))
    return found


def handler(event: dict, context: object = None) -> dict:
    """Process the S3 records of `event`; returns what happened to each."""
    if event.get("Event") == "s3:TestEvent":  # sent once when the notification is configured
        return {"status": "ignored", "reason": "s3:TestEvent", "files": []}
    settings = Settings()
    engine = build_engine(settings)
    s3 = client(settings, "s3")
    inbox = (settings.data_dir / "inbox").resolve()
    files = []
    for bucket, key in _records(event):
        parts = key.split("/")
        if not key.startswith(RAW_PREFIX) or len(parts) < 4 or not key.lower().endswith(".pdf"):
            files.append(
                {
                    "key": key,
                    "status": "bad_location",
                    "reason": f"expected {RAW_PREFIX}<grade>/<subject>/<file>.pdf",
                }
            )
            continue
        grade, subject, name = parts[1], parts[2], parts[-1]
        engine.publisher.load_export(grade, subject, inbox)
        engine.ingestor.sync_lexical()
        target = inbox / grade / subject / name
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        outcome = engine.ingestor.run(
            [target], inbox, job_type="lambda", input_dir=f"s3://{bucket}/{key}"
        )
        report = engine.publisher.publish_job(outcome.files)
        for result in outcome.files:
            files.append(
                {
                    "key": key,
                    "status": str(result.status),
                    "reason": result.reason,
                    "chunks": result.chunks,
                }
                | {
                    "job_id": outcome.job.job_id,
                    "published": len(report.sent),
                    "invalidation": report.invalidation_id,
                }
            )
    summary = {"status": "ok", "files": files}
    if settings.sns_topic_arn:
        client(settings, "sns").publish(
            TopicArn=settings.sns_topic_arn,
            Subject="OpenClass Nexus: curriculum processed",
            Message=json.dumps(summary),
        )
    return summary


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):  # inside Lambda: log to CloudWatch
    logging.getLogger().setLevel(logging.INFO)
