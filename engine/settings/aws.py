"""The AWS part of the settings: S3, DynamoDB, CloudFront, Lambda, SNS, the region and prices.

A mix-in of `engine.settings.Settings` (its fields are read from the environment and `.env` with
the rest); each feature is on only when its setting is present (`Settings.configured`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings


class AwsSettings(BaseSettings):
    """AWS settings; see the module docstring."""

    s3_bucket_name: str = Field(
        "openclass-nexus-ai", alias="S3_BUCKET_NAME", description="Publishing on when set."
    )
    s3_prefix: str = Field("", alias="S3_PREFIX", description="Key prefix inside the bucket.")
    s3_upload: bool = Field(
        False, alias="S3_UPLOAD", description="Watcher default: publish to S3 after each job."
    )
    s3_multipart_threshold_mb: int = Field(16, ge=5, alias="S3_MULTIPART_THRESHOLD_MB")
    dynamodb_jobs_table: str = Field(
        "ETLPipelineJobs", alias="DYNAMODB_JOBS_TABLE", description="Job records on when set."
    )
    dynamodb_telemetry_table: str = Field("NexusTelemetry", alias="DYNAMODB_TELEMETRY_TABLE")
    dynamodb_locks_table: str = Field(
        "NexusLocks",
        alias="DYNAMODB_LOCKS_TABLE",
        description="Per-grade/subject leases of the Lambda processor (no lost updates).",
    )
    cloudfront_distribution_id: str = Field("", alias="CLOUDFRONT_DISTRIBUTION_ID")
    cloudfront_distribution_url: str = Field("", alias="CLOUDFRONT_DISTRIBUTION_URL")
    cloudfront_key_pair_id: str = Field("", alias="CLOUDFRONT_KEY_PAIR_ID")
    cloudfront_private_key_path: Path | None = Field(None, alias="CLOUDFRONT_PRIVATE_KEY_PATH")
    cloudfront_url_expiry_s: int = Field(3600, ge=60, alias="CLOUDFRONT_URL_EXPIRY_S")
    lambda_function_name: str = Field("", alias="LAMBDA_FUNCTION_NAME")
    lambda_role_arn: str = Field("", alias="LAMBDA_ROLE_ARN")
    lambda_timeout: int = Field(900, ge=1, le=900, alias="LAMBDA_TIMEOUT")
    lambda_memory: int = Field(3008, ge=128, le=10240, alias="LAMBDA_MEMORY")
    sns_topic_arn: str = Field("", alias="SNS_TOPIC_ARN", description="Lambda notifies it.")
    aws_region: str = Field(
        "",
        alias="AWS_REGION",
        description="Empty = boto3's chain: AWS_DEFAULT_REGION, the profile's region, us-east-1.",
    )
    aws_timeout_s: float = Field(
        10.0,
        gt=0,
        alias="AWS_TIMEOUT_S",
        description="Bound on a whole S3/DynamoDB/CloudFront/Lambda call, retries included.",
    )
    bedrock_prices: dict[str, dict[str, float]] = Field(
        # USD per 1,000 input tokens, per model and region (Titan v2: $0.02 per million;
        # Cohere Embed Multilingual v3: $0.10 per million; Cohere Embed v4: $0.12 per million).
        {
            "amazon.titan-embed-text-v2:0": {"us-east-1": 0.00002, "us-west-2": 0.00002},
            "cohere.embed-multilingual-v3": {"us-east-1": 0.0001, "us-west-2": 0.0001},
            "cohere.embed-v4:0": {"us-east-1": 0.00012, "us-west-2": 0.00012},
        },
        alias="BEDROCK_PRICES",
    )
    s3_put_price_per_1000: float = Field(0.005, alias="S3_PUT_PRICE_PER_1000")
