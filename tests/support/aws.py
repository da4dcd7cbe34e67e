"""Helpers for AWS tests: moto's server on 127.0.0.1 and a CloudFront distribution."""

from __future__ import annotations

import boto3


def create_distribution(bucket: str) -> str:
    cloudfront = boto3.client("cloudfront", region_name="us-east-1")
    answer = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "nexus-tests",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "curriculum",
                        "DomainName": f"{bucket}.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "curriculum",
                "ViewerProtocolPolicy": "allow-all",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
            "Comment": "",
            "Enabled": True,
        }
    )
    return answer["Distribution"]["Id"]


def all_keys(bucket: str) -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def invalidated_paths(distribution_id: str) -> list[str]:
    cloudfront = boto3.client("cloudfront", region_name="us-east-1")
    items = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    paths = []
    for item in items.get("Items", []):
        batch = cloudfront.get_invalidation(DistributionId=distribution_id, Id=item["Id"])
        paths.extend(batch["Invalidation"]["InvalidationBatch"]["Paths"]["Items"])
    return sorted(paths)
