"""AWS Lambda entry point: an upload to `raw-curriculum/<grade>/<subject>/<file>.pdf` is
ingested by the same pipeline (Bedrock embeddings) and the grade/subject is published.

A Lambda starts with an empty /tmp, so before ingesting, the subject's published Chroma export
is loaded back (`Publisher.load_export`): the new export then holds the whole subject, not just
this file. Loading, ingesting and publishing happen under the grade/subject's lease
(`engine.aws.lease`), so concurrent uploads to one subject are processed one after another and
none is lost, while other subjects run in parallel. A record whose subject stays busy, or
whose publish could not be delivered, raises: Lambda retries the event.

Object keys come from whoever can upload to the bucket: grade and subject must follow
`engine.names`, every further part must be a plain name, and the file must land in the inbox.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import unquote_plus

from engine.app import build_engine
from engine.aws.clients import client
from engine.aws.lease import SubjectLease
from engine.cloud.admin import RAW_PREFIX
from engine.inbox.layout import is_candidate
from engine.names import BadName, check_file_name, check_grade_subject, library_key
from engine.paths import Outside, confined
from engine.settings import Settings

log = logging.getLogger(__name__)

_DEFAULT_WAIT_S = 600.0  # without a Lambda context (tests, local runs)
_MARGIN_S = 60.0  # left for ingesting and publishing after the lease is finally free


class NotDelivered(Exception):
    """The subject was processed but its publish is still waiting: let Lambda retry."""


def _records(event: dict) -> list[tuple[str, str]]:
    found = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        bucket, key = s3.get("bucket", {}).get("name"), s3.get("object", {}).get("key")
        if bucket and key:
            found.append((bucket, unquote_plus(key)))
    return found


def inbox_target(key: str, inbox: Path) -> tuple[str, str, Path]:
    """(grade, subject, path in the inbox) for an uploaded object key.

    Raises:
        BadName: the key is outside the layout or names something that is not a plain file.
    """
    parts = key.split("/")
    if not key.startswith(RAW_PREFIX) or len(parts) < 4 or not key.lower().endswith(".pdf"):
        raise BadName(f"expected {RAW_PREFIX}<grade>/<subject>/<file>.pdf")
    grade, subject = check_grade_subject(parts[1], parts[2])
    rest = parts[3:]
    for part in rest:  # each part a name the file system can hold: a BadName, never OSError
        check_file_name(part)
    if not is_candidate(Path(*parts[1:])):  # a name the watcher ignores (`~$x.pdf`, dotfiles)
        raise BadName(f"{key!r} is a temporary or hidden file name; it is not processed")
    try:
        target = confined(inbox, inbox.joinpath(grade, subject, *rest))
    except Outside:
        raise BadName(f"{key!r} points outside the inbox") from None
    return grade, subject, target


def _wait_s(context: object) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return max(1.0, remaining() / 1000 - _MARGIN_S) if remaining else _DEFAULT_WAIT_S


def handler(event: dict, context: object = None, settings: Settings | None = None) -> dict:
    """Process the S3 records of `event`; returns what happened to each."""
    if event.get("Event") == "s3:TestEvent":  # sent once when the notification is configured
        return {"status": "ignored", "reason": "s3:TestEvent", "files": []}
    settings = settings or Settings()
    engine = build_engine(settings)
    s3 = client(settings, "s3", transfer=True)
    leases = SubjectLease(client(settings, "dynamodb"), settings.dynamodb_locks_table)
    inbox = (settings.data_dir / "inbox").resolve()
    files = []
    for bucket, key in _records(event):
        try:
            grade, subject, target = inbox_target(key, inbox)
        except BadName as exc:
            files.append({"key": key, "status": "bad_location", "reason": str(exc)})
            continue
        with leases.hold(library_key(grade, subject), wait_s=_wait_s(context)):
            engine.publisher.load_export(grade, subject, inbox)
            engine.records.sync_lexical()
            target.parent.mkdir(parents=True, exist_ok=True)
            # a short temporary name (ignored by the watcher): boto3 adds a suffix of its own
            # to the name it downloads to, which a 255-byte file name has no room for
            partial = target.parent / f".s3-{secrets.token_hex(8)}.part"
            try:
                s3.download_file(bucket, key, str(partial))
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            outcome = engine.ingestor.run(
                [target], inbox, job_type="lambda", input_dir=f"s3://{bucket}/{key}"
            )
            if outcome is None:  # nothing to do for this file (the pipeline ignored it)
                files.append({"key": key, "status": "skipped", "reason": "nothing to process"})
                continue
            report = engine.publisher.publish_job(outcome.files)
            if report.pending:
                raise NotDelivered(f"{key}: {report.pending} object(s) not delivered")
        for result in outcome.files:
            files.append(
                {
                    "key": key,
                    "status": str(result.status),
                    "reason": result.reason,
                    "chunks": result.chunks,
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
