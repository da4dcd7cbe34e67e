"""The AWS side as the admin sets it up and watches it (`nexus aws setup|status|deploy-lambda`).

This module sits above the AWS adapters (`engine.aws`) and the services that keep tables
there (jobs, telemetry, leases): it creates what they need, probes them and deploys the
Lambda processor, so no adapter ever imports a service.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

from engine.aws.clients import client, region
from engine.settings import Settings

RAW_PREFIX = "raw-curriculum/"
HANDLER = "engine.cloud.lambda_handler.handler"


def setup(settings: Settings) -> list[str]:
    """Create the bucket, the two tables and (with a Lambda) the bucket notification."""
    from botocore.exceptions import ClientError

    from engine.aws.lease import lease_table_definition
    from engine.jobs.dynamodb import table_definition
    from engine.telemetry.sinks import telemetry_table_definition

    done = []
    s3 = client(settings, "s3")
    bucket_region = region(settings, "s3")
    try:
        if bucket_region == "us-east-1":
            s3.create_bucket(Bucket=settings.s3_bucket_name)
        else:
            s3.create_bucket(
                Bucket=settings.s3_bucket_name,
                CreateBucketConfiguration={"LocationConstraint": bucket_region},
            )
        done.append(f"bucket {settings.s3_bucket_name}: created")
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        done.append(f"bucket {settings.s3_bucket_name}: exists")
    dynamodb = client(settings, "dynamodb")
    for definition in (
        table_definition(settings.dynamodb_jobs_table),
        telemetry_table_definition(settings.dynamodb_telemetry_table),
        lease_table_definition(settings.dynamodb_locks_table),
    ):
        try:
            dynamodb.create_table(**definition)
            done.append(f"table {definition['TableName']}: created")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            done.append(f"table {definition['TableName']}: exists")
    if settings.lambda_function_name:
        try:
            function = client(settings, "lambda").get_function(
                FunctionName=settings.lambda_function_name
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            done.append("notification: run `nexus aws deploy-lambda` first")
        else:
            configure_notification(settings, function["Configuration"]["FunctionArn"])
            done.append(f"notification {RAW_PREFIX}*.pdf -> {settings.lambda_function_name}: set")
    return done


def configure_notification(settings: Settings, function_arn: str) -> None:
    """S3 uploads under raw-curriculum/…/*.pdf invoke the Lambda (replaces, so idempotent)."""
    from botocore.exceptions import ClientError

    try:
        client(settings, "lambda").add_permission(
            FunctionName=settings.lambda_function_name,
            StatementId="s3-raw-curriculum",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=f"arn:aws:s3:::{settings.s3_bucket_name}",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceConflictException":
            raise
    client(settings, "s3").put_bucket_notification_configuration(
        Bucket=settings.s3_bucket_name,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "Id": "nexus-raw-curriculum",
                    "LambdaFunctionArn": function_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": RAW_PREFIX},
                                {"Name": "suffix", "Value": ".pdf"},
                            ]
                        }
                    },
                }
            ]
        },
    )


def build_package() -> bytes:
    """A zip of the engine's code. Its dependencies (PyMuPDF, chromadb, boto3, ...) come from a
    Lambda layer or a container image built from Dockerfile.cpu; see the README."""
    root = Path(__file__).resolve().parents[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.py")):
            archive.write(path, Path("engine") / path.relative_to(root))
    return buffer.getvalue()


def lambda_environment(settings: Settings) -> dict[str, str]:
    env = {
        "EMBEDDING_STRATEGY": "bedrock",
        "NEXUS_DATA_DIR": "/tmp/nexus",
        "S3_BUCKET_NAME": settings.s3_bucket_name,
        "S3_PREFIX": settings.s3_prefix,
        "BEDROCK_REGION": region(settings, "bedrock-runtime"),
        "BEDROCK_MODEL_ID": settings.bedrock_model_id,
        "CLOUDFRONT_DISTRIBUTION_ID": settings.cloudfront_distribution_id,
        "SNS_TOPIC_ARN": settings.sns_topic_arn,
        "DYNAMODB_LOCKS_TABLE": settings.dynamodb_locks_table,
        # the Lambda image has no Tesseract: scans uploaded there are reported as needs_ocr
        "OCR_ENABLED": "false",
    }
    if settings.configured("DYNAMODB_JOBS_TABLE"):
        env["DYNAMODB_JOBS_TABLE"] = settings.dynamodb_jobs_table
    return env


def wait_until_updated(lam, name: str, *, delay_s: float = 2, max_attempts: int = 150) -> None:
    """Wait (up to 5 minutes by default) until the function's last update has finished."""
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
    )


def update_function(lam, name: str, code: dict, config: dict, *, delay_s: float = 2) -> dict:
    """Replace an existing function's code (`{"ZipFile": ...}` or `{"ImageUri": ...}`), then
    its configuration.

    Real AWS refuses a configuration change (ResourceConflictException) while the code update
    is still in progress, so each step waits for the function to be `Successful` again
    (moto does not model this; tests/test_aws_clients.py checks it against a stub that does).
    """
    lam.update_function_code(FunctionName=name, **code)
    wait_until_updated(lam, name, delay_s=delay_s)
    answer = lam.update_function_configuration(FunctionName=name, **config)
    wait_until_updated(lam, name, delay_s=delay_s)
    return answer


def deploy_lambda(settings: Settings, image_uri: str = "") -> dict:
    """Create the function or update its code and configuration; then the notification.

    With `image_uri` (built from docker/Dockerfile.lambda and pushed to ECR) the function runs
    that container image, which holds every dependency and the model. Without it, only the
    engine's code is shipped as a zip: for code-only updates of a function whose dependencies
    come from a layer.
    """
    from botocore.exceptions import ClientError

    if not (settings.lambda_function_name and settings.lambda_role_arn):
        raise SystemExit("nexus aws deploy-lambda needs LAMBDA_FUNCTION_NAME and LAMBDA_ROLE_ARN")
    lam = client(settings, "lambda")
    name = settings.lambda_function_name
    package = b"" if image_uri else build_package()
    code = {"ImageUri": image_uri} if image_uri else {"ZipFile": package}
    config = {
        "Role": settings.lambda_role_arn,
        "Timeout": settings.lambda_timeout,
        "MemorySize": settings.lambda_memory,
        "Environment": {"Variables": lambda_environment(settings)},
    }
    if not image_uri:  # an image names its handler itself (CMD in Dockerfile.lambda)
        config["Handler"] = HANDLER
    try:
        lam.get_function(FunctionName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        kind = {"PackageType": "Image"} if image_uri else {"Runtime": "python3.11"}
        answer = lam.create_function(FunctionName=name, Code=code, **kind, **config)
        wait_until_active(lam, name)
        action = "created"
    else:
        answer = update_function(lam, name, code, config)
        action = "updated"
    configure_notification(settings, answer["FunctionArn"])
    return {
        "action": action,
        "function_arn": answer["FunctionArn"],
        "package_type": "Image" if image_uri else "Zip",
        "image_uri": image_uri,
        "timeout": answer["Timeout"],
        "memory": answer["MemorySize"],
        "package_bytes": len(package),
    }


def wait_until_active(lam, name: str, *, delay_s: float = 2, max_attempts: int = 150) -> None:
    """Wait until a new function leaves the `Pending` state (image functions take a while)."""
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": delay_s, "MaxAttempts": max_attempts}
    )


def _probe(call) -> dict:
    started = time.perf_counter()
    try:
        call()
    except Exception as exc:  # any failure (network, credentials, refusal) = not reachable
        return {"reachable": False, "latency_ms": None, "error": str(exc)[:300]}
    return {
        "reachable": True,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "error": "",
    }


def status(settings: Settings, engine) -> dict:
    """Every AWS service: configured, reachable, latency; each probe bounded by AWS_TIMEOUT_S."""

    def quick(service: str):
        return client(settings, service, attempts=1)

    checks = {
        "s3": (
            settings.configured("S3_BUCKET_NAME"),
            lambda: quick("s3").head_bucket(Bucket=settings.s3_bucket_name),
        ),
        "cloudfront": (
            bool(settings.cloudfront_distribution_id),
            lambda: quick("cloudfront").get_distribution(Id=settings.cloudfront_distribution_id),
        ),
        "dynamodb_jobs": (
            settings.configured("DYNAMODB_JOBS_TABLE"),
            lambda: quick("dynamodb").describe_table(TableName=settings.dynamodb_jobs_table),
        ),
        "dynamodb_telemetry": (
            settings.configured("DYNAMODB_TELEMETRY_TABLE"),
            lambda: quick("dynamodb").describe_table(TableName=settings.dynamodb_telemetry_table),
        ),
        "bedrock": (
            settings.embedding_strategy in ("bedrock", "hybrid"),
            lambda: _bedrock_ping(settings),
        ),
        "lambda": (
            bool(settings.lambda_function_name),
            lambda: quick("lambda").get_function(FunctionName=settings.lambda_function_name),
        ),
    }
    result = {}
    for name, (configured, call) in checks.items():
        info = {"configured": configured, "reachable": None, "latency_ms": None, "error": ""}
        if configured:
            info |= _probe(call)
        result[name] = info
    outbox = engine.publisher.outbox.pending()
    result["s3"]["outbox_pending"] = len(outbox)
    result["embedding"] = {"strategy": settings.embedding_strategy} | engine.embedder.status()
    return result


def _bedrock_ping(settings: Settings) -> None:
    """One tiny InvokeModel call: Bedrock has no free health check."""
    import json

    quick = client(settings, "bedrock-runtime", attempts=1)
    quick.invoke_model(
        modelId=settings.bedrock_model_id,
        body=json.dumps({"inputText": "ping", "dimensions": 256}),
        contentType="application/json",
        accept="application/json",
    )["body"].read()
