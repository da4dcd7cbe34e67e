"""What ingestion costs: Bedrock input tokens priced per model and region, plus S3 requests.

Prices are settings (BEDROCK_PRICES, USD per 1,000 tokens per model and region;
S3_PUT_PRICE_PER_1000). A region missing from the table is priced at us-east-1's rate and the
summary says so (`estimated_regions`). S3 storage is not estimated: it depends on how long
objects are kept, which the engine does not know.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from engine.jobs.base import JobTracker
from engine.settings import Settings


def bedrock_price_per_1000(settings: Settings, model_id: str, region: str) -> tuple[float, bool]:
    """(USD per 1,000 input tokens, exact?) for a model in a region."""
    prices = settings.bedrock_prices.get(model_id, {})
    if region in prices:
        return prices[region], True
    return prices.get("us-east-1", 0.0), False


def _bedrock_region(settings: Settings) -> str:
    from engine.aws.clients import region

    return region(settings, "bedrock-runtime")


def bedrock_cost(settings: Settings, tokens: int) -> float:
    price, _ = bedrock_price_per_1000(
        settings, settings.bedrock_model_id, _bedrock_region(settings)
    )
    return tokens / 1000 * price


def s3_request_cost(settings: Settings, uploads: int) -> float:
    return uploads / 1000 * settings.s3_put_price_per_1000


def get_cost_summary(tracker: JobTracker, settings: Settings, days: int = 7) -> dict:
    """Totals and per-day/per-subject series of the last `days` days, for the CLI and panel.

    Returns:
        {"days", "total_cost", "total_tokens", "per_day": [{"date", "cost", "tokens", "jobs"}],
         "per_subject": {"<grade>/<subject>": cost}, "monthly_run_rate", "estimated_regions"}
    """
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days - 1)
    per_day = {
        start + timedelta(days=i): {"cost": 0.0, "tokens": 0, "jobs": 0} for i in range(days)
    }
    per_subject: dict[str, float] = defaultdict(float)
    price, exact = bedrock_price_per_1000(
        settings, settings.bedrock_model_id, _bedrock_region(settings)
    )
    for job in tracker.jobs_since(start.isoformat()):
        day = datetime.fromisoformat(job.timestamp).date()
        if day not in per_day:
            continue
        per_day[day]["cost"] += job.estimated_cost
        per_day[day]["tokens"] += job.input_tokens
        per_day[day]["jobs"] += 1
        for subject, tokens in job.tokens_by_subject.items():
            per_subject[subject] += tokens / 1000 * price
    total = sum(d["cost"] for d in per_day.values())
    return {
        "days": days,
        "total_cost": round(total, 10),
        "total_tokens": sum(d["tokens"] for d in per_day.values()),
        "per_day": [
            {
                "date": day.isoformat(),
                "cost": round(v["cost"], 10),
                "tokens": v["tokens"],
                "jobs": v["jobs"],
            }
            for day, v in sorted(per_day.items())
        ],
        "per_subject": {k: round(v, 10) for k, v in sorted(per_subject.items())},
        "monthly_run_rate": round(total / days * 30, 10),
        "estimated_regions": [] if exact else [_bedrock_region(settings)],
    }
