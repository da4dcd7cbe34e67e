"""Anonymised usage telemetry: per-hour aggregates, a PII guard, an offline queue, uploads."""
