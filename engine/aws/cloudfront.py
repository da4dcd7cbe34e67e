"""CloudFront: batched cache invalidation after publishing, and signed download URLs."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.aws.clients import AwsUnavailable, aws_errors

log = logging.getLogger(__name__)


class CloudFrontManager:
    def __init__(
        self,
        client,
        distribution_id: str,
        *,
        url: str = "",
        key_pair_id: str = "",
        private_key_path: Path | None = None,
        url_expiry_s: int = 3600,
    ):
        self.client = client
        self.distribution_id = distribution_id
        self.url = url.rstrip("/")
        self.key_pair_id = key_pair_id
        self.private_key_path = private_key_path
        self.url_expiry_s = url_expiry_s

    def invalidate(self, keys: list[str]) -> str:
        """One invalidation for all published keys; returns its id.

        Raises:
            AwsUnavailable: CloudFront could not be reached or refused.
        """
        paths = sorted({"/" + key.lstrip("/") for key in keys})
        try:
            answer = self.client.create_invalidation(
                DistributionId=self.distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": len(paths), "Items": paths},
                    "CallerReference": uuid.uuid4().hex,
                },
            )
        except aws_errors() as exc:
            raise AwsUnavailable(f"CloudFront invalidation failed: {exc}") from exc
        return answer["Invalidation"]["Id"]

    def wait(self, invalidation_id: str, timeout_s: float = 600, poll_s: float = 5) -> str:
        """Poll until the invalidation completes (moto says COMPLETED, AWS says Completed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.client.get_invalidation(
                DistributionId=self.distribution_id, Id=invalidation_id
            )["Invalidation"]["Status"]
            if status.lower() == "completed" or time.monotonic() > deadline:
                return status
            time.sleep(poll_s)

    def signed_url(self, key: str, expires_in_s: int | None = None) -> str:
        """A CloudFront URL for `key` that stops working after the expiry (canned policy)."""
        from botocore.signers import CloudFrontSigner
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        if not (self.url and self.key_pair_id and self.private_key_path):
            raise ValueError(
                "signed URLs need CLOUDFRONT_DISTRIBUTION_URL, CLOUDFRONT_KEY_PAIR_ID and "
                "CLOUDFRONT_PRIVATE_KEY_PATH"
            )
        private_key = serialization.load_pem_private_key(
            self.private_key_path.read_bytes(), password=None
        )

        def rsa_signer(message: bytes) -> bytes:
            return private_key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (CloudFront requires SHA-1)

        expires = datetime.now(UTC) + timedelta(seconds=expires_in_s or self.url_expiry_s)
        signer = CloudFrontSigner(self.key_pair_id, rsa_signer)
        return signer.generate_presigned_url(
            f"{self.url}/{key.lstrip('/')}", date_less_than=expires
        )
