"""A small local endpoint that speaks Bedrock's InvokeModel API for Titan text embeddings and
Cohere Embed (Multilingual v3, v4: `texts` and `input_type` in, `embeddings` out, the input
tokens in the `X-Amzn-Bedrock-Input-Token-Count` header).

moto's bedrock-runtime returns an empty body, so tests and benchmarks use this instead: boto3
talks real HTTP to it (point `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` at `stub.url`). Vectors are a
deterministic hashed bag of words, so texts sharing words are close and search results make
sense. Latency, throttling and outages can be injected while it runs:

- `throttle_remaining`: throttle the next N requests;
- `max_concurrent`: throttle a request that arrives while N are already being answered (a
  service that sheds load above a concurrency);
- `quota_rpm`: throttle above N requests per minute, like an account quota (a token bucket
  holding a second's worth of requests);
- `down`: answer 503 to everything.

Throttled requests are answered at once (HTTP 429, ThrottlingException), without the latency.

    with BedrockStub(latency_s=0.1) as stub:
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = stub.url
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_WORD = re.compile(r"\w+", re.UNICODE)
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


def hashed_vector(text: str, dimensions: int, normalize: bool = True) -> list[float]:
    """Deterministic bag-of-words vector: each word adds ±1 to a hashed coordinate."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector] if normalize else vector


def token_count(text: str) -> int:
    """The `inputTextTokenCount` the stub reports for `text`."""
    return len(_WORD.findall(text)) + text.count(".")


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: dict,
    error_type: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with a JSON body the way AWS does (`x-amzn-ErrorType` names an error)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    if error_type:
        handler.send_header("x-amzn-ErrorType", error_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class LocalEndpoint:
    """An HTTP server on 127.0.0.1 in a daemon thread; a context manager. Subclasses call
    `_listen(handler_class)` in `__init__`."""

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class BedrockStub(LocalEndpoint):
    """Threaded HTTP server on 127.0.0.1 answering `POST /model/<id>/invoke`."""

    def __init__(
        self,
        latency_s: float = 0.0,
        throttle_first: int = 0,
        *,
        max_concurrent: int = 0,
        quota_rpm: float = 0.0,
    ):
        self.latency_s = latency_s
        self.throttle_remaining = throttle_first
        self.max_concurrent = max_concurrent  # 0 = no limit
        self.quota_rpm = quota_rpm  # 0 = no limit
        self.down = False  # answer 503 ServiceUnavailable to everything
        self.cohere_input_types: list[str] = []  # input_type of each Cohere request answered
        self.requests = 0
        self.throttled = 0
        self.max_in_flight = 0  # most requests being answered at once (throttled ones too)
        self.max_served_in_flight = 0  # most requests being answered at once, not throttled
        self._in_flight = 0
        self._served_in_flight = 0
        self._quota_tokens = 0.0
        self._quota_updated: float | None = None  # set (bucket full) on the first request
        self._lock = threading.Lock()
        self._listen(self._handler())

    def _over_quota(self) -> bool:
        """Take one request from the quota's bucket (caller holds the lock)."""
        if not self.quota_rpm:
            return False
        rate = self.quota_rpm / 60
        size = max(1.0, rate)  # a second's worth
        now = time.monotonic()
        if self._quota_updated is None:
            self._quota_tokens, self._quota_updated = size, now
        self._quota_tokens = min(size, self._quota_tokens + (now - self._quota_updated) * rate)
        self._quota_updated = now
        if self._quota_tokens < 1:
            return True
        self._quota_tokens -= 1
        return False

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm and
                # delayed ACKs add ~40 ms to every call, which no real endpoint does
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status: int, body: dict, error_type: str = "", **headers) -> None:
                send_json(self, status, body, error_type, headers)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with stub._lock:
                    stub.requests += 1
                    stub._in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub._in_flight)
                    if stub.throttle_remaining > 0:
                        stub.throttle_remaining -= 1
                        throttle = True
                    else:
                        throttle = (
                            0 < stub.max_concurrent <= stub._served_in_flight
                        ) or stub._over_quota()
                    if throttle:
                        stub.throttled += 1
                    else:
                        stub._served_in_flight += 1
                        stub.max_served_in_flight = max(
                            stub.max_served_in_flight, stub._served_in_flight
                        )
                try:
                    if stub.latency_s and not throttle and not stub.down:
                        time.sleep(stub.latency_s)
                    self._answer(raw, throttle)
                finally:
                    with stub._lock:
                        stub._in_flight -= 1
                        if not throttle:
                            stub._served_in_flight -= 1

            def _answer(self, raw: bytes, throttle: bool) -> None:
                match = re.fullmatch(r"/model/([^/]+)/invoke", self.path)
                if stub.down:
                    self._send(
                        503, {"message": "Service unavailable"}, "ServiceUnavailableException"
                    )
                elif throttle:
                    self._send(429, {"message": "Too many requests"}, "ThrottlingException")
                elif not match:
                    self._send(
                        404, {"message": f"unknown path {self.path}"}, "ResourceNotFoundException"
                    )
                elif "cohere." in match.group(1):
                    self._answer_cohere(match.group(1), raw)
                else:
                    try:
                        body = json.loads(raw)
                        text = body["inputText"]
                    except (ValueError, KeyError):
                        self._send(400, {"message": "inputText is required"}, "ValidationException")
                        return
                    vector = hashed_vector(
                        text, int(body.get("dimensions", 1024)), bool(body.get("normalize", True))
                    )
                    self._send(200, {"embedding": vector, "inputTextTokenCount": token_count(text)})

            def _answer_cohere(self, model_id: str, raw: bytes) -> None:
                """Cohere Embed v3 / v4: up to 96 `texts`, an `input_type`, floats back."""
                try:
                    body = json.loads(raw)
                    texts, input_type = body["texts"], body["input_type"]
                except (ValueError, KeyError):
                    message = {"message": "texts and input_type are required"}
                    self._send(400, message, "ValidationException")
                    return
                if not 0 < len(texts) <= 96 or input_type not in COHERE_INPUT_TYPES:
                    message = {"message": "1 to 96 texts and a known input_type"}
                    self._send(400, message, "ValidationException")
                    return
                stub.cohere_input_types.append(input_type)
                v4 = "embed-v4" in model_id
                size = int(body.get("output_dimension", 1536)) if v4 else 1024
                vectors = [hashed_vector(t, size) for t in texts]
                embeddings = {"float": vectors} if body.get("embedding_types") else vectors
                answer = {"id": "stub", "embeddings": embeddings, "texts": texts}
                tokens = str(sum(token_count(t) for t in texts))
                self._send(200, answer, **{"X-Amzn-Bedrock-Input-Token-Count": tokens})

        return Handler


def main() -> None:
    """Run the stub as its own process: `python -m devtools.bedrock_stub --latency 0.1`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="local Bedrock InvokeModel endpoint")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per call")
    parser.add_argument(
        "--max-concurrent", type=int, default=0, help="throttle above this many calls at once"
    )
    parser.add_argument(
        "--quota-rpm", type=float, default=0.0, help="throttle above this many calls a minute"
    )
    args = parser.parse_args()
    stub = BedrockStub(
        latency_s=args.latency, max_concurrent=args.max_concurrent, quota_rpm=args.quota_rpm
    )
    with stub:
        print(stub.url, flush=True)
        try:
            sys.stdin.read()  # runs until stdin closes (the parent exits or closes it)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
