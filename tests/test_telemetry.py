"""Telemetry: anonymised hourly aggregates, the PII guard (fuzzed), offline queue and upload."""

from __future__ import annotations

import copy
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from engine.app import build_engine
from engine.cloud.admin import setup
from engine.settings import Settings
from engine.telemetry.pii import check_payload
from tests.support import pdfs
from tests.support.cli import nexus
from tests.support.net import closed_port_url

TEN_AM = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)

VALID = {
    "school_id_hash": "ab" * 32,
    "timestamp": "2026-11-02T10:00:00Z",
    "metrics": {
        "query_count": 12,
        "avg_latency_ms": 41.5,
        "p95_latency_ms": 80.2,
        "error_count": 1,
        "storage_usage_mb": 230.4,
        "model_version": "sentence-transformers/all-MiniLM-L6-v2",
        "embedding_strategy": "local",
        "vkp_versions": {"informatika_kelas_10": "1.2.0"},
    },
}

PII = st.one_of(
    st.emails().map(str),
    st.from_regex(r"(\+62|0)8[1-9]\d{7,10}", fullmatch=True),  # Indonesian mobile numbers
    st.from_regex(r"[1-9]\d{15}", fullmatch=True),  # NIK
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: ip.exploded),
    st.lists(
        st.sampled_from(["Budi", "Siti", "Santoso", "kelas", "nilai", "ujian"]),
        min_size=2,
        max_size=4,
    ).map(" ".join),
)


def with_pii(field: str, value: str) -> dict:
    payload = copy.deepcopy(VALID)
    match field:
        case "school_id_hash" | "timestamp":
            payload[field] = value
        case "metric_value":
            payload["metrics"]["model_version"] = value
        case "strategy":
            payload["metrics"]["embedding_strategy"] = value
        case "numeric":
            payload["metrics"]["query_count"] = value
        case "vkp_key":
            payload["metrics"]["vkp_versions"] = {value: "1.0.0"}
        case "vkp_value":
            payload["metrics"]["vkp_versions"] = {"informatika_kelas_10": value}
        case "new_metric":
            payload["metrics"][value] = 1
        case "new_top_level":
            payload[value] = "x"
        case "wrapped_in_model":
            payload["metrics"]["model_version"] = f"model-{value}"
    return payload


FIELDS = [
    "school_id_hash",
    "timestamp",
    "metric_value",
    "strategy",
    "numeric",
    "vkp_key",
    "vkp_value",
    "new_metric",
    "new_top_level",
    "wrapped_in_model",
]


def test_the_seed_shape_passes_the_guard():
    assert check_payload(VALID) == []


@hyp_settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(FIELDS), value=PII)
def test_pii_in_any_field_is_refused(field, value):
    assert check_payload(with_pii(field, value)), f"leak: {field}={value!r}"


@hyp_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    latencies=st.lists(st.floats(min_value=0.1, max_value=60_000), min_size=1, max_size=30),
    errors=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_payloads_the_engine_builds_always_pass(engine, latencies, errors):
    with engine.database.write() as conn:
        conn.execute("DELETE FROM telemetry_queries")
    for latency, error in zip(latencies, errors, strict=False):
        engine.telemetry.record_query(latency, error, when=TEN_AM)
    [payload] = engine.telemetry.build(now=TEN_AM + timedelta(hours=1))
    assert check_payload(payload) == []
    assert payload["metrics"]["query_count"] == len(latencies)


def test_searches_are_counted_per_hour_without_their_text(engine, inbox):
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Fotosintesis di daun."])
    engine.ingestor.run([inbox], inbox)
    question = "fotosintesis rahasia-budi@sekolah.id"
    for _ in range(3):
        engine.searcher.search(question)
    with pytest.raises(ValueError):
        engine.searcher.search(question, mode="nonsense")

    [(count, errors)] = engine.catalog.conn.execute(
        "SELECT count(*), sum(error) FROM telemetry_queries"
    ).fetchall()
    assert (count, errors) == (4, 1)
    dump = "\n".join(engine.catalog.conn.iterdump())
    assert "rahasia" not in dump and "budi@" not in dump  # only aggregates are kept


def test_hourly_payload_has_the_seed_shape_and_right_numbers(engine):
    for latency in (10, 20, 30, 40, 500):
        engine.telemetry.record_query(latency, latency == 500, when=TEN_AM)
    engine.telemetry.record_query(5, False, when=TEN_AM + timedelta(hours=1))  # hour still open

    [payload] = engine.telemetry.build(now=TEN_AM + timedelta(hours=1))

    assert set(payload) == {"school_id_hash", "timestamp", "metrics"}
    assert payload["timestamp"] == "2026-11-02T10:00:00Z"
    metrics = payload["metrics"]
    assert (metrics["query_count"], metrics["error_count"], metrics["avg_latency_ms"]) == (
        5,
        1,
        120.0,
    )
    assert metrics["p95_latency_ms"] >= 400
    assert metrics["embedding_strategy"] == "local" and metrics["model_version"] == "fake/fake-64"
    assert payload["school_id_hash"] != engine.telemetry.school_id  # salted hash, not the id


def test_a_payload_with_pii_is_not_queued_and_the_status_says_why(engine):
    engine.telemetry.describe = lambda: {
        "storage_usage_mb": 1.0,
        "model_version": "kepala.sekolah@sman1.sch.id",
        "embedding_strategy": "local",
        "vkp_versions": {},
    }
    engine.telemetry.record_query(10, False, when=TEN_AM)

    assert engine.telemetry.roll_up(now=TEN_AM + timedelta(hours=1)) == {"queued": 0, "refused": 1}

    assert engine.telemetry.queued() == []
    check = engine.telemetry.status()["last_pii_check"]
    assert check["ok"] is False and "model_version" in check["problems"][0]


def telemetry_items() -> list[dict]:
    return (
        boto3.resource("dynamodb", region_name="us-east-1").Table("NexusTelemetry").scan()["Items"]
    )


def test_upload_to_dynamodb_is_idempotent_and_an_outage_keeps_the_queue(aws, monkeypatch):
    monkeypatch.setenv("DYNAMODB_TELEMETRY_TABLE", "NexusTelemetry")
    setup(Settings())
    telemetry = build_engine(Settings()).telemetry
    for hour in range(2):
        telemetry.record_query(25, False, when=TEN_AM + timedelta(hours=hour))
    now = TEN_AM + timedelta(hours=3)

    # offline: nothing leaves, the queue survives a restart
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_port_url())
    monkeypatch.setenv("AWS_TIMEOUT_S", "1")
    offline = build_engine(Settings()).telemetry.upload(now=now)
    assert offline["sent"] == 0 and offline["pending"] == 2 and offline["error"]
    assert len(build_engine(Settings()).telemetry.queued()) == 2

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    restarted = build_engine(Settings()).telemetry
    assert restarted.upload(now=now) == {"sent": 2, "pending": 0, "error": ""}
    items = telemetry_items()
    assert sorted(i["timestamp"] for i in items) == ["2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z"]
    assert all(i["metrics"]["query_count"] == 1 for i in items)

    # a retried upload of the same hour overwrites, never double-counts
    payload = json.loads(json.dumps(items[0], default=float))
    restarted.sink.send([payload])
    assert len(telemetry_items()) == 2
    assert restarted.status()["last_upload"]["sent"] == 2


def test_queue_is_capped_at_the_newest_hours(engine):
    engine.telemetry.queue_max = 3
    for hour in range(5):
        engine.telemetry.record_query(10, False, when=TEN_AM + timedelta(hours=hour))
    engine.telemetry.roll_up(now=TEN_AM + timedelta(hours=6))
    assert [p["timestamp"][11:13] for p in engine.telemetry.queued()] == ["12", "13", "14"]


def test_disabled_telemetry_counts_and_sends_nothing(aws, monkeypatch, inbox):
    monkeypatch.setenv("TELEMETRY_ENABLED", "false")
    monkeypatch.setenv("DYNAMODB_TELEMETRY_TABLE", "NexusTelemetry")
    setup(Settings())
    from tests.support.fakes import FakeEmbedder

    engine = build_engine(Settings(), embedder=FakeEmbedder())
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "a.pdf", ["Fotosintesis di daun."])
    engine.ingestor.run([inbox], inbox)
    engine.searcher.search("fotosintesis")
    engine.telemetry.record_query(10, False, when=TEN_AM)

    assert engine.catalog.conn.execute("SELECT count(*) FROM telemetry_queries").fetchone()[0] == 0
    assert engine.telemetry.upload(now=TEN_AM + timedelta(hours=2))["sent"] == 0
    assert telemetry_items() == []


def test_cli_show_prints_exactly_what_would_be_sent(settings):
    engine = build_engine(settings)
    engine.telemetry.record_query(33, False, when=datetime.now(UTC) - timedelta(hours=2))
    shown = nexus("telemetry", "show", "--json").stdout
    payloads = json.loads(shown)["payloads"]
    assert payloads == engine.telemetry.queued()
    assert len(payloads) == 1 and payloads[0]["metrics"]["avg_latency_ms"] == 33.0


def test_the_hour_in_progress_is_shown_but_not_queued(engine):
    engine.telemetry.record_query(10, False, when=TEN_AM - timedelta(hours=1))
    engine.telemetry.record_query(30, False, when=TEN_AM)
    engine.telemetry.record_query(50, True, when=TEN_AM + timedelta(minutes=20))

    current = engine.telemetry.current_hour(now=TEN_AM + timedelta(minutes=30))

    assert current["timestamp"] == "2026-11-02T10:00:00Z"
    assert current["metrics"]["query_count"] == 2 and current["metrics"]["error_count"] == 1
    assert current["metrics"]["avg_latency_ms"] == 40.0
    assert check_payload(current) == []  # the shape an upload will send once the hour is over
    assert engine.telemetry.queued() == []  # nothing queued by looking
    engine.telemetry.roll_up(now=TEN_AM + timedelta(minutes=30))
    assert [p["timestamp"] for p in engine.telemetry.queued()] == ["2026-11-02T09:00:00Z"]
    still = engine.telemetry.current_hour(now=TEN_AM + timedelta(minutes=31))
    assert still["metrics"]["query_count"] == 2  # the hour in progress stays out of the queue
    assert engine.telemetry.current_hour(now=TEN_AM + timedelta(hours=1)) is None


def test_the_hour_in_progress_is_none_when_disabled(engine):
    engine.telemetry.record_query(30, False)
    engine.telemetry.enabled = False
    assert engine.telemetry.current_hour() is None


def test_the_running_engine_uploads_on_its_schedule(engine):
    import threading

    from engine.telemetry.service import every_hour

    calls = []
    engine.telemetry.upload = lambda: calls.append(1) or {"sent": 0}
    stop = threading.Event()
    thread = every_hour(engine.telemetry, stop, interval_s=0.05)
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert len(calls) >= 2 and not thread.is_alive()


# --- real curriculum names, local model paths, refused hours kept ------------------------------

LONG_SUBJECT = "pendidikan_pancasila_dan_kewarganegaraan"


@pytest.mark.parametrize(
    "package",
    [
        f"{LONG_SUBJECT}_kelas_10",  # 49 characters: the seed's <subject>_<grade>
        "informatika_kelas_10",
        f"kelas_10__{LONG_SUBJECT}",  # engine.names.library_key
        f"{'a' * 64}_kelas_12",  # the longest subject engine.names allows
    ],
)
def test_real_curriculum_package_names_pass_the_guard(package):
    payload = copy.deepcopy(VALID)
    payload["metrics"]["vkp_versions"] = {package: "1.0.0"}
    assert check_payload(payload) == []


@pytest.mark.parametrize(
    "package",
    ["Budi_Santoso", "budi santoso_kelas_10", "kelas__10__x___y", "x" * 140 + "_kelas_10", "a"],
)
def test_names_that_are_not_package_names_are_still_refused(package):
    payload = copy.deepcopy(VALID)
    payload["metrics"]["vkp_versions"] = {package: "1.0.0"}
    assert check_payload(payload)


def describe_with(model: str, packages: dict | None = None):
    return lambda: {
        "storage_usage_mb": 1.0,
        "model_version": model,
        "embedding_strategy": "local",
        "vkp_versions": packages or {},
    }


def test_a_local_model_path_is_sent_as_a_short_hash_not_the_path(engine):
    engine.telemetry.describe = describe_with(
        "/home/guru-budi/models/multilingual", {f"{LONG_SUBJECT}_kelas_10": "1.0.0"}
    )
    engine.telemetry.record_query(10, False, when=TEN_AM)
    assert engine.telemetry.roll_up(now=TEN_AM + timedelta(hours=1)) == {"queued": 1, "refused": 0}
    [payload] = engine.telemetry.queued()
    label = payload["metrics"]["model_version"]
    assert label.startswith("local-") and "budi" not in json.dumps(payload)
    engine.telemetry.record_query(10, False, when=TEN_AM + timedelta(hours=1))
    engine.telemetry.roll_up(now=TEN_AM + timedelta(hours=2))
    assert {p["metrics"]["model_version"] for p in engine.telemetry.queued()} == {label}


def raw_rows(engine, hour: str) -> int:
    return engine.catalog.conn.execute(
        "SELECT count(*) FROM telemetry_queries WHERE hour = ?", (hour,)
    ).fetchone()[0]


def test_a_refused_hour_keeps_its_rows_says_why_and_goes_out_once_fixed(engine, settings):
    engine.telemetry.describe = describe_with("kepala.sekolah@sman1.sch.id")
    for latency in (10, 30):
        engine.telemetry.record_query(latency, False, when=TEN_AM)
    later = TEN_AM + timedelta(hours=1)

    assert engine.telemetry.roll_up(now=later) == {"queued": 0, "refused": 1}
    assert engine.telemetry.roll_up(now=later) == {"queued": 0, "refused": 1}  # tried again
    assert raw_rows(engine, "2026-11-02T10:00:00Z") == 2  # nothing dropped
    [refused] = engine.telemetry.status()["refused_hours"]
    assert refused["hour"] == "2026-11-02T10:00:00Z" and refused["queries"] == 2
    assert "model_version" in refused["problems"][0]

    status = nexus("telemetry", "status")
    assert json.loads(status.stdout)["refused_hours"][0]["hour"] == "2026-11-02T10:00:00Z"
    assert "held back 2026-11-02T10:00:00Z (2 searches kept): model_version" in status.stderr

    engine.telemetry.describe = describe_with("sentence-transformers/all-MiniLM-L6-v2")
    assert engine.telemetry.roll_up(now=later) == {"queued": 1, "refused": 0}
    [payload] = engine.telemetry.queued()
    assert payload["metrics"]["query_count"] == 2 and payload["metrics"]["avg_latency_ms"] == 20.0
    assert raw_rows(engine, "2026-11-02T10:00:00Z") == 0
    assert engine.telemetry.status()["refused_hours"] == []


def test_a_queued_payload_edited_on_disk_is_held_back_not_dropped(engine, monkeypatch):
    from engine.telemetry.sinks import TelemetrySink

    class Recorder(TelemetrySink):
        def __init__(self):
            self.sent = []

        def send(self, payloads):
            self.sent += payloads

    engine.telemetry.sink = Recorder()
    for hour in range(2):
        engine.telemetry.record_query(10, False, when=TEN_AM + timedelta(hours=hour))
    engine.telemetry.roll_up(now=TEN_AM + timedelta(hours=2))
    bad = copy.deepcopy(engine.telemetry.queued()[0])
    bad["metrics"]["model_version"] = "guru budi"
    with engine.database.write() as conn:
        conn.execute(
            "UPDATE telemetry_queue SET payload = ? WHERE hour = ?",
            (json.dumps(bad), bad["timestamp"]),
        )
    result = engine.telemetry.upload(now=TEN_AM + timedelta(hours=2))
    assert result["sent"] == 1 and result["pending"] == 1
    assert [p["timestamp"] for p in engine.telemetry.sink.sent] == ["2026-11-02T11:00:00Z"]
    [refused] = engine.telemetry.status()["refused_hours"]
    assert refused["hour"] == "2026-11-02T10:00:00Z" and refused["kept"] == "queue"


def test_the_panel_shows_held_back_hours_and_why(engine, monkeypatch):
    import streamlit
    from streamlit.testing.v1 import AppTest

    from engine.auth import set_password
    from tests.conftest import REPO

    monkeypatch.setenv("UI_LANGUAGE", "en")
    engine.telemetry.describe = describe_with("kepala.sekolah@sman1.sch.id")
    engine.telemetry.record_query(10, False, when=datetime.now(UTC) - timedelta(hours=2))
    engine.telemetry.roll_up()
    set_password(engine.settings, "kunci-rahasia-123")
    streamlit.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=60)
    at.session_state["authenticated"] = True
    at.session_state["last_seen"] = time.time()
    at.run()
    at.switch_page("telemetry.py").run()
    assert not at.exception
    assert any("1 hour(s) held back by the PII guard" in w.value for w in at.warning)
    [table] = at.dataframe
    assert "model_version" in " ".join(table.value["Why"])
    streamlit.cache_resource.clear()


def test_a_search_that_cannot_be_counted_still_answers(engine, inbox):
    """Telemetry is best effort: a locked or broken counter never costs the user the answer."""
    pdfs.text_pdf(inbox / "kelas_10" / "ipa" / "sel.pdf", ["Sel adalah unit terkecil kehidupan."])
    engine.ingestor.run([inbox], inbox)

    def locked(latency_ms, failed):
        raise sqlite3.OperationalError("database is locked")

    engine.searcher.on_query = locked
    [hit] = engine.searcher.search("unit terkecil kehidupan", k=1)
    assert hit.source == "sel.pdf"
