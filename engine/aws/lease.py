"""A lease per grade/subject in DynamoDB, so central processing cannot lose an update.

Every Lambda invocation that changes a grade/subject loads the subject's published export,
adds its file and publishes the whole subject again. Two invocations for the same subject at
the same moment would each publish what they saw, and the last one would silently drop the
other's document. So an invocation first takes the subject's lease: one conditional
`PutItem` that succeeds only when nobody holds the lease or the holder's lease has expired (a
Lambda that crashed or timed out). Different subjects have different leases and run in
parallel. The holder renews the lease while it works and deletes it (only if still its own)
when done.

Table (DYNAMODB_LOCKS_TABLE, created by `nexus aws setup`): partition key `lease`, plus
`owner` and `expires_at` (epoch seconds, also usable as the table's TTL attribute).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class LeaseTimeout(Exception):
    """The lease stayed taken until the deadline; the caller should fail and be retried."""


def lease_table_definition(name: str) -> dict:
    """create_table arguments for the leases table."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "lease", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "lease", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


class SubjectLease:
    """Leases in one DynamoDB table, reached through a boto3 client.

    Args:
        client: a boto3 DynamoDB client.
        table: the leases table name.
        ttl_s: how long a lease lasts without renewal (renewed every third of it).
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(
        self, client, table: str, *, ttl_s: float = 120.0, clock: Callable[[], float] = time.time
    ):
        self.client = client
        self.table = table
        self.ttl_s = ttl_s
        self.clock = clock

    def try_acquire(self, name: str, owner: str) -> bool:
        """Take lease `name` for `owner` if it is free or expired; True when taken."""
        now = self.clock()
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "lease": {"S": name},
                    "owner": {"S": owner},
                    "expires_at": {"N": f"{now + self.ttl_s:.3f}"},
                },
                ConditionExpression="attribute_not_exists(#l) OR expires_at < :now OR #o = :me",
                ExpressionAttributeNames={"#l": "lease", "#o": "owner"},
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":me": {"S": owner}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def renew(self, name: str, owner: str) -> bool:
        """Extend our lease; False when it is no longer ours (it expired and was taken)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"lease": {"S": name}},
                UpdateExpression="SET expires_at = :until",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":until": {"N": f"{self.clock() + self.ttl_s:.3f}"},
                    ":me": {"S": owner},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, name: str, owner: str) -> None:
        """Give the lease back, unless someone else holds it by now."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"lease": {"S": name}},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            log.warning("lease %s was no longer ours when released", name)

    @contextmanager
    def hold(self, name: str, *, wait_s: float, poll_s: float = 0.5) -> Iterator[str]:
        """Wait up to `wait_s` for lease `name`, keep it renewed while the block runs.

        Raises:
            LeaseTimeout: the lease was not free before the deadline.
        """
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while not self.try_acquire(name, owner):
            if time.monotonic() >= deadline:
                raise LeaseTimeout(f"{name} stayed busy for {wait_s:.0f} s")
            time.sleep(poll_s * (0.5 + random.random()))
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self.ttl_s / 3):
                if not self.renew(name, owner):
                    log.error("lost lease %s while working", name)
                    return

        renewer = threading.Thread(target=keep, name=f"lease-{name}", daemon=True)
        renewer.start()
        try:
            yield owner
        finally:
            stop.set()
            renewer.join()
            self.release(name, owner)
