"""A small local endpoint for Bedrock's batch inference control plane (the `bedrock` service).

It answers `CreateModelInvocationJob` (POST /model-invocation-job), `GetModelInvocationJob`
(GET /model-invocation-job/{jobIdentifier}) and `StopModelInvocationJob` (POST
/model-invocation-job/{jobIdentifier}/stop) over real HTTP; point `AWS_ENDPOINT_URL_BEDROCK` at
`stub.url`. Input and output go through S3 at `s3_endpoint` (moto's server in tests): a job
reads its JSONL, embeds each record the way `BedrockStub` answers InvokeModel (same vectors,
same token counts), and writes `<output uri>/<job id>/records.jsonl.out`, records in reverse
order as a reminder that Bedrock promises none. Like Bedrock, a repeated `clientRequestToken`
returns the job it already created.

Knobs, set while it runs:

- `polls_in_progress`: a job answers InProgress to this many polls before it completes;
- `fail_texts`: records whose input text is in this set come back with an `error`;
- `fail_job`: a message: the next jobs end Failed with it.

Counters: `jobs_created`, `polls`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

from devtools.bedrock_stub import LocalEndpoint, hashed_vector, send_json, token_count

ARN_PREFIX = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"


class BedrockBatchStub(LocalEndpoint):
    """Threaded HTTP server on 127.0.0.1 running batch inference jobs against S3."""

    def __init__(self, s3_endpoint: str, *, polls_in_progress: int = 2):
        self.s3_endpoint = s3_endpoint
        self.polls_in_progress = polls_in_progress
        self.fail_texts: set[str] = set()
        self.fail_job = ""
        self.jobs: dict[str, dict] = {}  # by job id
        self.jobs_created = 0
        self.polls = 0
        self._tokens: dict[str, str] = {}  # clientRequestToken -> job id
        self._lock = threading.Lock()
        self._listen(self._handler())

    def _s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")

    # --- operations --------------------------------------------------------------------------
    def create(self, request: dict) -> dict:
        with self._lock:
            token = request.get("clientRequestToken")
            if token and token in self._tokens:
                return {"jobArn": ARN_PREFIX + self._tokens[token]}
            job_id = uuid.uuid4().hex[:12]
            self.jobs[job_id] = {
                "jobArn": ARN_PREFIX + job_id,
                "jobName": request["jobName"],
                "modelId": request["modelId"],
                "roleArn": request["roleArn"],
                "input": request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"],
                "output": request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"],
                "status": "Submitted",
                "polls": 0,
                "fail": self.fail_job,
            }
            if token:
                self._tokens[token] = job_id
            self.jobs_created += 1
            return {"jobArn": ARN_PREFIX + job_id}

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            self.polls += 1
            job = self.jobs.get(job_id)
            if job is None:
                return None
            job["polls"] += 1
            if job["status"] in ("Submitted", "InProgress"):
                if job["polls"] <= self.polls_in_progress:
                    job["status"] = "InProgress"
                elif job["fail"]:
                    job["status"], job["message"] = "Failed", job["fail"]
                else:
                    self._run(job)
                    job["status"] = "Completed"
            keys = ("jobArn", "jobName", "modelId", "roleArn", "status", "message")
            return {key: job[key] for key in keys if key in job}

    def stop(self, job_id: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return False
            if job["status"] in ("Submitted", "InProgress"):
                job["status"] = "Stopped"
            return True

    def _run(self, job: dict) -> None:
        """Embed the job's input records and write the output object (caller holds the lock)."""
        s3 = self._s3()
        bucket, key = job["input"].removeprefix("s3://").split("/", 1)
        lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        out = []
        for line in filter(None, lines):
            record = json.loads(line)
            model_input = record["modelInput"]
            text = model_input["inputText"]
            answer = {"recordId": record["recordId"], "modelInput": model_input}
            if text in self.fail_texts:
                answer["error"] = {"errorCode": 400, "errorMessage": "Malformed input"}
            else:
                vector = hashed_vector(
                    text,
                    int(model_input.get("dimensions", 1024)),
                    bool(model_input.get("normalize", True)),
                )
                answer["modelOutput"] = {
                    "embedding": vector,
                    "inputTextTokenCount": token_count(text),
                }
            out.append(json.dumps(answer))
        out_bucket, out_prefix = job["output"].removeprefix("s3://").split("/", 1)
        job_id = job["jobArn"].rsplit("/", 1)[-1]
        name = key.rsplit("/", 1)[-1]
        s3.put_object(
            Bucket=out_bucket,
            Key=f"{out_prefix.rstrip('/')}/{job_id}/{name}.out",
            Body=("\n".join(reversed(out)) + "\n").encode(),
        )
        manifest = {"totalRecordCount": len(out), "errorRecordCount": len(self.fail_texts)}
        s3.put_object(
            Bucket=out_bucket,
            Key=f"{out_prefix.rstrip('/')}/{job_id}/manifest.json.out",
            Body=json.dumps(manifest).encode(),
        )

    # --- HTTP ----------------------------------------------------------------------------------
    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict, error_type: str = "") -> None:
                send_json(self, status, body, error_type)

            def _not_found(self) -> None:
                self._send(404, {"message": f"no job at {self.path}"}, "ResourceNotFoundException")

            def _job_id(self, encoded: str) -> str:
                return unquote(encoded).removeprefix(ARN_PREFIX)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/model-invocation-job":
                    try:
                        answer = stub.create(json.loads(raw))
                    except (ValueError, KeyError, TypeError) as exc:
                        self._send(400, {"message": f"bad request: {exc}"}, "ValidationException")
                        return
                    self._send(200, answer)
                elif match := re.fullmatch(r"/model-invocation-job/([^/]+)/stop", self.path):
                    if stub.stop(self._job_id(match[1])):
                        self._send(200, {})
                    else:
                        self._not_found()
                else:
                    self._not_found()

            def do_GET(self) -> None:  # noqa: N802
                match = re.fullmatch(r"/model-invocation-job/([^/?]+)", self.path)
                job = stub.get(self._job_id(match[1])) if match else None
                if job is None:
                    self._not_found()
                else:
                    self._send(200, job)

        return Handler
