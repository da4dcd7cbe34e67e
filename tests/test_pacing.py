"""Pacing (token bucket, AIMD concurrency) with an injected clock, and the base embedder's
grouping, concurrency and throttling retries with in-process backends."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from engine.embed.base import (
    Embedder,
    EmbeddingResult,
    EmbeddingThrottled,
    EmbeddingUnavailable,
    ModelInfo,
)
from engine.embed.pacing import AimdLimit, Pacer, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# --- token bucket ----------------------------------------------------------------------------


def test_bucket_spaces_requests_at_the_rate_after_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=2, clock=clock)
    assert [round(bucket.reserve(), 3) for _ in range(5)] == [0, 0, 0.1, 0.2, 0.3]
    clock.now = 10.0  # idle: the bucket refills, but only up to its burst
    assert [round(bucket.reserve(), 3) for _ in range(3)] == [0, 0, 0.1]


def test_bucket_never_exceeds_rate_plus_burst_in_any_window():
    clock = FakeClock()
    bucket = TokenBucket(25, clock=clock, sleep=clock.sleep)  # 1,500 a minute
    sent = []
    for _ in range(1000):
        bucket.acquire()
        sent.append(clock.now)
    assert sent[-1] == pytest.approx((1000 - bucket.burst) / 25)
    for i, start in enumerate(sent):
        in_a_second = sum(1 for t in sent[i:] if t < start + 1.0)
        assert in_a_second <= 25 + bucket.burst


def test_bucket_refuses_a_rate_of_zero():
    with pytest.raises(ValueError):
        TokenBucket(0)


# --- AIMD ------------------------------------------------------------------------------------


def test_aimd_grows_by_one_per_round_of_full_windows_and_halves_on_throttle():
    limit = AimdLimit(8)
    assert limit.window == 1
    limit.on_success(window_was_full=True)
    assert limit.window == 2
    for expected in (2, 3):  # at window 2 it takes two successes to reach 3
        limit.on_success(window_was_full=True)
        assert limit.window == expected
    for _ in range(3):
        limit.on_success(window_was_full=True)
    assert limit.window == 4

    assert limit.on_throttle(limit.epoch) is True
    assert limit.window == 2
    assert limit.on_throttle(limit.epoch - 1) is False  # sent before the decrease
    assert limit.window == 2
    limit.on_throttle(limit.epoch)
    limit.on_throttle(limit.epoch)
    assert limit.window == 1  # never below the minimum
    assert limit.peak == 4


def test_aimd_does_not_grow_when_the_window_was_not_full_and_stops_at_its_maximum():
    limit = AimdLimit(3, initial=2)
    for _ in range(100):
        limit.on_success(window_was_full=False)
    assert limit.window == 2
    for _ in range(100):
        limit.on_success(window_was_full=True)
    assert limit.window == 3


# --- pacer -----------------------------------------------------------------------------------


def test_pacer_grows_only_when_every_slot_is_sending():
    clock = FakeClock()
    pacer = Pacer(8, clock=clock)
    first = pacer.acquire()
    assert first.window_full  # one slot, one call: full
    pacer.succeeded(first)
    assert pacer.limit.window == 2
    alone = pacer.acquire()
    assert not alone.window_full  # one of two slots in use
    pacer.succeeded(alone)
    assert pacer.limit.window == 2
    both = [pacer.acquire(), pacer.acquire()]
    assert both[1].window_full
    pacer.throttled(both[1])
    pacer.throttled(both[0])  # same round: only one decrease
    assert pacer.limit.window == 1
    assert pacer.stats()["throttled"] == 2 and pacer.stats()["peak_concurrency"] == 2


def test_a_throttle_the_rate_caused_cuts_the_rate_which_then_recovers():
    clock = FakeClock()
    pacer = Pacer(8, max_rps=10, initial_concurrency=4, clock=clock, sleep=clock.sleep)
    first, second = pacer.acquire(), pacer.acquire()
    assert not first.window_full  # 2 of 4 slots sending: the bucket, not the window, limits
    pacer.throttled(first)
    pacer.throttled(second)  # same round: one cut
    assert pacer.stats()["paced_rps"] == pytest.approx(7.0) and pacer.limit.window == 2
    successes = 0
    while pacer.bucket.rate_per_s < 10:
        pacer.succeeded(pacer.acquire())
        successes += 1
    assert pacer.bucket.rate_per_s == 10  # back to BEDROCK_MAX_RPM, never above
    assert 15 <= successes <= 30  # about 3 s of calls at ~8.5/s: a tenth of the limit a second


def test_a_throttle_with_a_full_window_lowers_concurrency_not_the_rate():
    pacer = Pacer(8, max_rps=10, clock=FakeClock())
    ticket = pacer.acquire()
    assert ticket.window_full
    pacer.throttled(ticket)
    assert pacer.bucket.rate_per_s == 10 and pacer.limit.window == 1


def test_pacer_reports_the_recent_rate_and_forgets_old_calls():
    clock = FakeClock()
    pacer = Pacer(4, max_rps=100, window_s=10, clock=clock, sleep=clock.sleep)
    for _ in range(51):
        ticket = pacer.acquire()
        clock.now += 0.1
        pacer.succeeded(ticket)
    stats = pacer.stats()
    assert stats["rate_rps"] == pytest.approx(10.0)
    assert stats["requests"] == 51 and stats["max_rps"] == 100
    clock.now += 60
    assert pacer.stats()["rate_rps"] == 0.0


def test_pacer_bounds_real_threads_by_its_window():
    pacer = Pacer(3, initial_concurrency=3)
    busy, most = 0, 0
    lock = threading.Lock()

    def call() -> None:
        nonlocal busy, most
        ticket = pacer.acquire()
        with lock:
            busy += 1
            most = max(most, busy)
        time.sleep(0.01)
        with lock:
            busy -= 1
        pacer.failed(ticket)  # leaves the limit at 3

    threads = [threading.Thread(target=call) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 3


# --- the base class: grouping, concurrency, retries ---------------------------------------------


class Backend(Embedder):
    """In-process backend: vectors are [len(text)]; throttles above `capacity` calls at once."""

    def __init__(self, *, capacity: int = 0, always_throttle: bool = False, latency_s: float = 0):
        self.capacity = capacity
        self.always_throttle = always_throttle
        self.latency_s = latency_s
        self.calls: list[int] = []
        self.throttles = 0
        self._busy = 0
        self._lock = threading.Lock()
        self.retry_backoff_s = 0.005

    @property
    def model(self) -> ModelInfo:
        return ModelInfo("test/len", "len")

    def embed_batch(self, texts: Sequence[str]) -> EmbeddingResult:
        with self._lock:
            self._busy += 1
            self.calls.append(len(texts))
            refuse = self.always_throttle or 0 < self.capacity < self._busy
            self.throttles += refuse
        try:
            if refuse:
                raise EmbeddingThrottled("too many requests")
            time.sleep(self.latency_s)
            return EmbeddingResult([[float(len(t))] for t in texts], self.model, len(texts))
        finally:
            with self._lock:
                self._busy -= 1


def test_groups_are_batches_per_call_batches_and_progress_adds_up():
    backend = Backend()
    backend.batch_size, backend.batches_per_call = 4, 3
    seen = []
    result = backend.embed([f"t{i}" for i in range(30)], seen.append)
    assert backend.calls == [12, 12, 6]
    assert seen == [12, 12, 6] and result.input_tokens == 30


def test_paced_concurrent_embedding_survives_throttling_in_order():
    backend = Backend(capacity=3, latency_s=0.005)
    backend.batch_size, backend.concurrency = 1, 12
    backend.pacer = Pacer(12)
    backend.max_attempts = 8
    texts = ["x" * (i % 50 + 1) for i in range(400)]

    result = backend.embed(texts)

    assert [v[0] for v in result.vectors] == [float(len(t)) for t in texts]  # none lost, in order
    assert backend.throttles > 0  # AIMD probed above the capacity ...
    stats = backend.pacer.stats()
    assert stats["concurrency"] <= 6  # ... and stayed near it
    assert stats["requests"] == len(texts) + backend.throttles


def test_still_throttled_after_the_last_try_is_unavailable():
    backend = Backend(always_throttle=True)
    backend.max_attempts = 3
    with pytest.raises(EmbeddingUnavailable, match="still throttled after 3 tries"):
        backend.embed(["a"])
    assert backend.calls == [1, 1, 1]
