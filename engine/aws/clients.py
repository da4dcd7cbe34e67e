"""boto3 clients, built in one place: one session, one region rule, bounded calls.

- **`.env` reaches boto3.** boto3 reads its own variables (credentials, `AWS_PROFILE`,
  `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>`,
  `AWS_CA_BUNDLE`...) only from the process environment, while pydantic-settings reads `.env`
  without exporting it. So before the first client is built, every `AWS_*` line of `.env` that
  the environment lacks is copied into it, the way Compose's `env_file` does. The process
  environment always wins over `.env`.
- **Region** follows boto3's own chain: `AWS_REGION` if given, else the session's region
  (`AWS_DEFAULT_REGION`, then the profile's `region`), else us-east-1. Bedrock (runtime and
  the `bedrock` control plane that runs batch inference jobs) uses `BEDROCK_REGION` when set,
  else the same chain.
- **Timeouts**: `AWS_TIMEOUT_S` bounds a whole control call (S3 metadata, DynamoDB, CloudFront,
  Lambda, SNS) including its retry: each of the `attempts` tries gets an equal share, split
  between connecting and reading, after setting aside the retry back-off (at most 1 s per retry
  in botocore's standard mode, which is capped here by giving no retry when the budget is too
  small). Bedrock has its own BEDROCK_TIMEOUT_S and retry settings.
"""

from __future__ import annotations

import os
from functools import cache

from engine.settings import Settings

DEFAULT_REGION = "us-east-1"
TRANSFER_READ_TIMEOUT_S = 60.0
_BACKOFF_S = 1.0  # botocore standard mode: the first retry waits rand(0, 1) s


class AwsUnavailable(Exception):
    """AWS could not be reached or refused the call (no network, no credentials, ...)."""


def export_dotenv_aws(settings: Settings) -> list[str]:
    """Copy `AWS_*` entries of the settings' `.env` file into the environment if unset.

    Returns the names copied (values are never logged).
    """
    from dotenv import dotenv_values

    env_file = settings.model_config.get("env_file")
    files = [env_file] if isinstance(env_file, str | os.PathLike) else list(env_file or [])
    copied = []
    for file in files:
        if not os.path.isfile(file):
            continue
        for name, value in dotenv_values(file).items():
            if name.startswith("AWS_") and value and name not in os.environ:
                os.environ[name] = value
                copied.append(name)
    return copied


def session(settings: Settings):
    """A boto3 session that sees `.env`'s AWS settings (credentials, profile, endpoints)."""
    import boto3

    export_dotenv_aws(settings)
    return boto3.Session()


def region(settings: Settings, service: str = "") -> str:
    """The region a client for `service` uses (see the module docstring)."""
    if service in ("bedrock-runtime", "bedrock") and settings.bedrock_region:
        return settings.bedrock_region
    return settings.aws_region or session(settings).region_name or DEFAULT_REGION


def call_budget(timeout_s: float, attempts: int) -> tuple[float, int]:
    """(seconds each for connect and read per try, tries) so all tries fit in `timeout_s`."""
    attempts = max(1, attempts)
    while attempts > 1 and timeout_s - _BACKOFF_S * (attempts - 1) < timeout_s / 2:
        attempts -= 1
    per_try = (timeout_s - _BACKOFF_S * (attempts - 1)) / attempts
    return per_try / 2, attempts


def _config(settings: Settings, attempts: int):
    from botocore.config import Config

    each, tries = call_budget(settings.aws_timeout_s, attempts)
    return Config(
        connect_timeout=each,
        read_timeout=each,
        retries={"mode": "standard", "total_max_attempts": tries},
    )


def client(settings: Settings, service: str, *, attempts: int = 2, transfer: bool = False):
    """A boto3 client for `service` whose calls end within AWS_TIMEOUT_S.

    `transfer=True` is for moving whole files through S3: connecting is bounded the same way,
    but a socket read may wait up to TRANSFER_READ_TIMEOUT_S, so a thin school link can still
    move a package or a backup.
    """
    config = _config(settings, attempts)
    if transfer:
        config = config.merge(type(config)(read_timeout=TRANSFER_READ_TIMEOUT_S))
    return session(settings).client(service, region_name=region(settings, service), config=config)


def bedrock_client(settings: Settings):
    """The Bedrock runtime client: its own timeout and a pool sized to concurrency.

    botocore does not retry (one attempt): the embedder retries throttling itself, so every
    request passes its rate limiter and every throttle lowers its concurrency
    (`engine.embed.pacing`); a botocore retry would do neither.
    """
    from botocore.config import Config

    return session(settings).client(
        "bedrock-runtime",
        region_name=region(settings, "bedrock-runtime"),
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=settings.bedrock_timeout_s,
            read_timeout=settings.bedrock_timeout_s,
            max_pool_connections=settings.bedrock_concurrency,
        ),
    )


def dynamodb_table(settings: Settings, name: str, *, attempts: int = 2):
    """A boto3 DynamoDB Table resource with the same bounds."""
    resource = session(settings).resource(
        "dynamodb", region_name=region(settings, "dynamodb"), config=_config(settings, attempts)
    )
    return resource.Table(name)


@cache
def aws_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean "AWS is unavailable or said no"."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, S3UploadFailedError)
