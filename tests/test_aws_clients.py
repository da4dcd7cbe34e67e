"""How every AWS client is built: `.env` reaches boto3, the region follows boto3's chain,
AWS_TIMEOUT_S bounds a whole call, and a Lambda update waits for AWS between its two steps."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.aws.clients import call_budget, client, region
from engine.cloud.admin import update_function
from engine.settings import Settings


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a hung endpoint)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


@pytest.mark.parametrize("timeout_s", [1.0, 3.0])
def test_aws_timeout_bounds_the_whole_call_including_retries(silent_server, monkeypatch, timeout_s):
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server)
    dynamodb = client(Settings(AWS_TIMEOUT_S=timeout_s), "dynamodb")
    started = time.monotonic()
    with pytest.raises(Exception, match="timeout|timed out"):
        dynamodb.list_tables()
    assert time.monotonic() - started < timeout_s + 0.5


def test_call_budget_gives_up_retries_before_the_bound():
    each, tries = call_budget(10.0, 2)
    assert tries == 2 and (each * 2) * tries + 1.0 <= 10.0
    each, tries = call_budget(1.0, 2)  # no room for a back-off: one try with the whole budget
    assert (each, tries) == (0.5, 1)


def test_dotenv_aws_settings_reach_boto3(tmp_path, monkeypatch):
    """Credentials, region and endpoint written only in .env are what boto3 uses."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    (tmp_path / ".env").write_text(
        "AWS_ACCESS_KEY_ID=from-dotenv\nAWS_SECRET_ACCESS_KEY=secret\n"
        "AWS_DEFAULT_REGION=ap-southeast-3\nAWS_ENDPOINT_URL=http://127.0.0.1:9\n"
    )
    monkeypatch.chdir(tmp_path)
    s3 = client(Settings(), "s3")
    assert s3.meta.region_name == "ap-southeast-3"
    assert s3.meta.endpoint_url == "http://127.0.0.1:9"
    assert s3._request_signer._credentials.access_key == "from-dotenv"


def test_process_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("AWS_ACCESS_KEY_ID=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-environment")
    s3 = client(Settings(), "s3")
    assert s3._request_signer._credentials.access_key == "from-environment"


def test_region_follows_boto3_chain_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-3")
    assert region(Settings()) == "ap-southeast-3"
    assert region(Settings(), "bedrock-runtime") == "ap-southeast-3"
    assert region(Settings(AWS_REGION="eu-west-1")) == "eu-west-1"
    assert region(Settings(BEDROCK_REGION="us-west-2"), "bedrock-runtime") == "us-west-2"
    # a profile's region, when nothing else says
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = tmp_path / "aws-config"
    config.write_text("[profile school]\nregion = ap-southeast-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "school")
    assert region(Settings()) == "ap-southeast-1"
    monkeypatch.delenv("AWS_PROFILE")
    assert region(Settings()) == "us-east-1"  # the documented default


class _LambdaLikeAws(BaseHTTPRequestHandler):
    """Lambda's REST API as real AWS behaves after UpdateFunctionCode: the function stays
    `InProgress` for a while and UpdateFunctionConfiguration is refused with a conflict."""

    busy_polls = 2
    state = {"status": "Successful", "polls_left": 0, "conflicts": 0, "configured": False}

    def log_message(self, *args):
        pass

    def _answer(self, code: int, body: dict, error: str = ""):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _configuration(self) -> dict:
        return {
            "FunctionName": "nexus",
            "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:nexus",
            "Timeout": 900,
            "MemorySize": 3008,
            "LastUpdateStatus": self.state["status"],
        }

    def do_GET(self):
        state = self.state
        if state["status"] == "InProgress":
            state["polls_left"] -= 1
            if state["polls_left"] < 0:
                state["status"] = "Successful"
        self._answer(200, {"Configuration": self._configuration()})

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        state = self.state
        if state["status"] == "InProgress":
            state["conflicts"] += 1
            message = "The operation cannot be performed at this time. An update is in progress"
            return self._answer(409, {"message": message}, "ResourceConflictException")
        state.update(status="InProgress", polls_left=self.busy_polls)
        if self.path.endswith("/configuration"):
            state["configured"] = True
        self._answer(200, self._configuration())


def test_lambda_update_waits_for_the_code_update_before_configuring(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LambdaLikeAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{server.server_port}")
        lam = client(Settings(), "lambda", attempts=1)
        # what the old code did: configure straight after the code update -> conflict
        lam.update_function_code(FunctionName="nexus", ZipFile=b"zip")
        with pytest.raises(lam.exceptions.ResourceConflictException):
            lam.update_function_configuration(FunctionName="nexus", Timeout=900)
        _LambdaLikeAws.state.update(status="Successful", conflicts=0, configured=False)

        answer = update_function(lam, "nexus", {"ZipFile": b"zip"}, {"Timeout": 900}, delay_s=0.05)
        assert _LambdaLikeAws.state == {
            "status": "Successful",
            "polls_left": -1,
            "conflicts": 0,
            "configured": True,
        }
        assert answer["Timeout"] == 900
    finally:
        server.shutdown()
