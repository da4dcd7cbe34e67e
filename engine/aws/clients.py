"""boto3 clients, built in one place with bounded timeouts and retries.

boto3 itself honours AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> variables,
so any S3-compatible or emulated endpoint works without code here.
"""

from __future__ import annotations

from functools import cache

from engine.settings import Settings


class AwsUnavailable(Exception):
    """AWS could not be reached or refused the call (no network, no credentials, ...)."""


def _config(settings: Settings, attempts: int):
    from botocore.config import Config

    return Config(
        connect_timeout=settings.aws_timeout_s,
        read_timeout=max(settings.aws_timeout_s, 10),
        retries={"mode": "standard", "max_attempts": attempts},
    )


def client(settings: Settings, service: str, *, attempts: int = 2):
    """A boto3 client for `service` whose calls give up after a few seconds."""
    import boto3

    return boto3.client(
        service, region_name=settings.aws_region, config=_config(settings, attempts)
    )


def dynamodb_table(settings: Settings, name: str, *, attempts: int = 2):
    """A boto3 DynamoDB Table resource with the same bounds."""
    import boto3

    resource = boto3.resource(
        "dynamodb", region_name=settings.aws_region, config=_config(settings, attempts)
    )
    return resource.Table(name)


@cache
def aws_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean "AWS is unavailable or said no"."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, S3UploadFailedError)
