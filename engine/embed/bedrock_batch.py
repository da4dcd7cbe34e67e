"""Bedrock batch inference for large uploads: one job per document instead of one call per chunk.

`BatchInference.embed(texts)` writes the texts as JSONL records to S3, starts a Bedrock
`CreateModelInvocationJob`, waits for it, and reads the vectors back from the job's `.jsonl.out`
objects. `BedrockEmbedder.embed` hands it any call with at least BEDROCK_BATCH_MIN_CHUNKS texts.

Waiting survives restarts. The job is named by a digest of the model, its settings and the
texts, and `<state_dir>/<digest>.json` records it: a restart re-runs the same ingest, so the
same chunks give the same digest and the embedder waits for the job it already started instead
of paying for a second one. The state file is written (atomically) before the job is created,
with the job name and a client request token, and again with the job's ARN as soon as Bedrock
answers; a process killed between the two re-sends the same request, which Bedrock's
idempotency token turns into the same job. The wait is bounded by BEDROCK_BATCH_TIMEOUT_H,
counted from the job's creation (also across restarts). The state file is removed once the
job ended, whichever way.

Bytes from S3 are outside bytes: every read is capped (the output is at most what the input
can produce) and each output record is checked (a record id we sent, once, a vector of the
configured length of finite numbers). Records that come back with an `error`, or not at all,
are embedded one by one through the normal InvokeModel path (`reembed`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from engine.embed.base import EmbeddingUnavailable

log = logging.getLogger(__name__)

DONE = frozenset({"Completed", "PartiallyCompleted"})
FAILED = frozenset({"Failed", "Stopped", "Expired"})
STATE_MAX_BYTES = 64 * 1024
MAX_OUTPUT_OBJECTS = 1000
# Titan v2 takes at most 8,192 tokens (~50,000 characters); an output line also repeats the input
LINE_OVERHEAD_BYTES = 4096
FLOAT_JSON_BYTES = 32

Reembed = Callable[[list[str]], tuple[list[list[float]], int]]


class BatchInference:
    """Embeds many texts with one Bedrock batch inference job (see the module docstring)."""

    def __init__(
        self,
        bedrock_client,
        s3_client,
        *,
        bucket: str,
        prefix: str,
        role_arn: str,
        model_id: str,
        dimensions: int,
        normalize: bool,
        state_dir: Path,
        poll_s: float = 60.0,
        timeout_s: float = 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """
        Args:
            bedrock_client: a boto3 `bedrock` (control plane) client.
            s3_client: a boto3 `s3` client for `bucket`.
            prefix: key prefix inside the bucket (S3_PREFIX); jobs live under
                `<prefix>/bedrock-batch/<digest>/`.
            role_arn: the service role the job runs as (reads input, writes output).
            state_dir: where the job of each pending digest is recorded.
            poll_s: seconds between status polls; timeout_s: most seconds to wait for a job.
        """
        self.bedrock = bedrock_client
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.role_arn = role_arn
        self.model_id = model_id
        self.dimensions = dimensions
        self.normalize = normalize
        self.state_dir = Path(state_dir)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._sleep = sleep

    # --- the whole round trip ------------------------------------------------------------------
    def embed(
        self, texts: Sequence[str], reembed: Reembed | None = None
    ) -> tuple[list[list[float]], int]:
        """Vectors for `texts` in order, and the input tokens Bedrock counted.

        Raises:
            EmbeddingUnavailable: the job failed, timed out, or its output was unusable.
        """
        texts = list(texts)
        digest = self.digest(texts)
        state = self._load_state(digest)
        try:
            if not state.get("job_arn"):
                state = self._start(digest, texts, state)
            status = self._wait(state)
            if status["status"] in FAILED:
                reason = status.get("message") or "no reason given"
                raise EmbeddingUnavailable(
                    f"Bedrock batch job {status['status'].lower()}: {reason}"
                )
            found, tokens = self._read_output(digest, state["job_arn"], texts)
        except EmbeddingUnavailable:
            self._state_path(digest).unlink(missing_ok=True)
            raise
        except (BotoCoreError, ClientError) as exc:
            # the job may be fine: keep the state file, a retry resumes waiting for it; but a
            # refused CreateModelInvocationJob made no job, and re-sending it would be refused
            if isinstance(exc, ClientError) and not self._load_state(digest).get("job_arn"):
                self._state_path(digest).unlink(missing_ok=True)
            raise EmbeddingUnavailable(f"Bedrock batch inference unreachable: {exc}") from exc
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            if reembed is None:
                raise EmbeddingUnavailable(f"{len(missing)} records failed in the batch job")
            log.info("re-embedding %d records the batch job failed", len(missing))
            vectors, extra = reembed([texts[i] for i in missing])
            found.update(zip(missing, vectors, strict=True))
            tokens += extra
        self._state_path(digest).unlink(missing_ok=True)
        return [found[i] for i in range(len(texts))], tokens

    def digest(self, texts: Sequence[str]) -> str:
        """Names the job: the same model, settings and texts give the same digest."""
        hasher = hashlib.sha256()
        head = json.dumps([self.model_id, self.dimensions, self.normalize, len(texts)])
        hasher.update(head.encode())
        for text in texts:
            data = text.encode("utf-8", "surrogatepass")
            hasher.update(len(data).to_bytes(8, "big") + data)
        return hasher.hexdigest()

    # --- starting and waiting ------------------------------------------------------------------
    def _key(self, digest: str, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, "bedrock-batch", digest, *parts) if p)

    def _start(self, digest: str, texts: list[str], state: dict) -> dict:
        if not state.get("job_name"):
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
            state = {
                "digest": digest,
                "job_name": f"nexus-{digest[:32]}-{stamp}",
                "client_token": f"nexus-{digest[:48]}-{stamp}",
                "created_at": time.time(),
            }
            lines = (
                json.dumps(
                    {
                        "recordId": f"{i + 1:08d}",
                        "modelInput": {
                            "inputText": text,
                            "dimensions": self.dimensions,
                            "normalize": self.normalize,
                        },
                    },
                    ensure_ascii=False,
                )
                for i, text in enumerate(texts)
            )
            body = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
            self.s3.put_object(
                Bucket=self.bucket, Key=self._key(digest, "input", "records.jsonl"), Body=body
            )
            self._save_state(state)  # a kill from here on re-sends the same request
        answer = self.bedrock.create_model_invocation_job(
            jobName=state["job_name"],
            clientRequestToken=state["client_token"],
            roleArn=self.role_arn,
            modelId=self.model_id,
            inputDataConfig={
                "s3InputDataConfig": {
                    "s3Uri": f"s3://{self.bucket}/{self._key(digest, 'input', 'records.jsonl')}"
                }
            },
            outputDataConfig={
                "s3OutputDataConfig": {
                    "s3Uri": f"s3://{self.bucket}/{self._key(digest, 'output')}/"
                }
            },
            timeoutDurationInHours=min(168, max(24, math.ceil(self.timeout_s / 3600))),
        )
        state["job_arn"] = answer["jobArn"]
        self._save_state(state)
        log.info("Bedrock batch job %s started for %d texts", state["job_arn"], len(texts))
        return state

    def _wait(self, state: dict) -> dict:
        deadline = float(state.get("created_at", time.time())) + self.timeout_s
        while True:
            status = self.bedrock.get_model_invocation_job(jobIdentifier=state["job_arn"])
            if status.get("status") in DONE | FAILED:
                return status
            if time.time() >= deadline:
                self._stop(state["job_arn"])
                hours = self.timeout_s / 3600
                raise EmbeddingUnavailable(
                    f"Bedrock batch job still {status.get('status')} after {hours:g} h"
                )
            self._sleep(self.poll_s)

    def _stop(self, job_arn: str) -> None:
        try:
            self.bedrock.stop_model_invocation_job(jobIdentifier=job_arn)
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not stop Bedrock batch job %s: %s", job_arn, exc)

    # --- reading the output --------------------------------------------------------------------
    def _read_output(
        self, digest: str, job_arn: str, texts: list[str]
    ) -> tuple[dict[int, list[float]], int]:
        """Vectors by input index (records that failed are absent), and the tokens counted."""
        job_id = job_arn.rsplit("/", 1)[-1]
        prefix = self._key(digest, "output", job_id) + "/"
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl.out")]
            if len(keys) > MAX_OUTPUT_OBJECTS:
                raise EmbeddingUnavailable("Bedrock batch output has too many objects")
        budget = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) * 2
        budget += len(texts) * (LINE_OVERHEAD_BYTES + FLOAT_JSON_BYTES * self.dimensions)
        found: dict[int, list[float]] = {}
        tokens = errors = 0
        for key in keys:
            data = self._read_capped(key, budget)
            budget -= len(data)
            for line in data.splitlines():
                if not line.strip():
                    continue
                index, vector, count = self._parse_record(line, len(texts))
                if index in found:
                    raise EmbeddingUnavailable(f"record {index + 1:08d} came back twice")
                if vector is None:
                    errors += 1
                    continue
                found[index] = vector
                tokens += count
        if errors:
            log.warning("Bedrock batch job %s: %d records failed", job_arn, errors)
        return found, tokens

    def _read_capped(self, key: str, limit: int) -> bytes:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            data = body.read(limit + 1)
        finally:
            body.close()
        if len(data) > limit:
            raise EmbeddingUnavailable(f"Bedrock batch output {key} is larger than possible")
        return data

    def _parse_record(self, line: bytes, count: int) -> tuple[int, list[float] | None, int]:
        try:
            record = json.loads(line)
            record_id = record["recordId"]
            index = int(record_id) - 1
            if not (isinstance(record_id, str) and record_id == f"{index + 1:08d}"):
                raise ValueError(f"bad record id {record_id!r}")
            if not 0 <= index < count:
                raise ValueError(f"unknown record id {record_id!r}")
            if record.get("error") or "modelOutput" not in record:
                return index, None, 0
            output = record["modelOutput"]
            vector = output["embedding"]
            if not (
                isinstance(vector, list)
                and len(vector) == self.dimensions
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in vector
                )
            ):
                raise ValueError(f"record {record_id}: not a vector of {self.dimensions} numbers")
            tokens = output.get("inputTextTokenCount", 0)
            if not isinstance(tokens, int) or tokens < 0:
                raise ValueError(f"record {record_id}: bad token count")
            return index, [float(v) for v in vector], tokens
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingUnavailable(f"Bedrock batch output is malformed: {exc}") from exc

    # --- the state file ------------------------------------------------------------------------
    def _state_path(self, digest: str) -> Path:
        return self.state_dir / f"{digest}.json"

    def _load_state(self, digest: str) -> dict:
        path = self._state_path(digest)
        try:
            with path.open("rb") as file:
                raw = file.read(STATE_MAX_BYTES + 1)
            if len(raw) > STATE_MAX_BYTES:
                raise ValueError("too large")
            state = json.loads(raw)
            if not isinstance(state, dict) or state.get("digest") != digest:
                raise ValueError("not this digest's state")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable batch state %s: %s", path, exc)
            return {}
        if state.get("job_arn"):
            log.info("resuming the wait for Bedrock batch job %s", state["job_arn"])
        return state

    def _save_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.state_dir, prefix=".state-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(state, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self._state_path(state["digest"]))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
