"""Where telemetry payloads go: one small interface, a DynamoDB implementation.

Items are keyed by `school_id_hash` + `timestamp` (the hour), so sending the same hour again
overwrites instead of double-counting: a retried upload is harmless.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from decimal import Decimal


def telemetry_table_definition(name: str) -> dict:
    """create_table arguments for the telemetry table (used by `nexus aws setup`)."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "school_id_hash", "KeyType": "HASH"},
            {"AttributeName": "timestamp", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "school_id_hash", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


class TelemetrySink(ABC):
    @abstractmethod
    def send(self, payloads: list[dict]) -> None:
        """Deliver payloads (all or raise)."""


class DynamoTelemetrySink(TelemetrySink):
    def __init__(self, table):
        self.table = table  # boto3 DynamoDB Table resource

    def send(self, payloads: list[dict]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["school_id_hash", "timestamp"]) as batch:
            for payload in payloads:
                batch.put_item(Item=json.loads(json.dumps(payload), parse_float=Decimal))
