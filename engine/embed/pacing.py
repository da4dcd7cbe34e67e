"""Pacing calls to a rate-limited service: adaptive concurrency (AIMD) under a token bucket.

Bedrock's Titan v2 takes one text per call and an account may send only so many calls a minute
(1,500 by default), so the embedder's worker threads share one `Pacer`:

- `TokenBucket` caps the request rate at the configured quota (BEDROCK_MAX_RPM). A small burst
  (a quarter of a second's worth) lets the workers catch up after a slow call without ever
  exceeding the quota by more than that burst in any minute. Waiting is by reservation: a
  caller takes its token at once (the balance may go negative) and sleeps until it is due, so
  waiters are served in order and nobody sleeps holding the lock.
- `AimdLimit`, like TCP's congestion window, holds how many calls may be in flight: one more
  after each round of successful calls (as many as the window), half as many (rounded up)
  after a throttle. A throttle halves the window at most once per round: calls sent before the
  last decrease say nothing new. The window grows only when it was full, i.e. every slot was
  sending (RFC 7661's idea): when the token bucket is what holds the rate back, more slots
  would not send more, and a window that grew without bound would burst into the quota the
  moment the bucket loosened.

Both take an injected clock (and the bucket a sleep) so `tests/test_pacing.py` runs them without
waiting. `Pacer` puts them together (slots first come, first served; a throttle that the rate,
not the window, caused also slows the bucket for a while: see its docstring) and keeps the
figures `status()` shows: the achieved rate over the last `window_s` seconds, the current and
the highest concurrency, requests and throttles.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class TokenBucket:
    """At most `rate_per_s` acquisitions per second on average, bursts of at most `burst`."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, burst if burst is not None else rate_per_s / 4)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        self._updated = now

    def reserve(self) -> float:
        """Take one token now; returns how many seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return max(0.0, -self._tokens / self.rate_per_s)

    def set_rate(self, rate_per_s: float) -> None:
        """Change the rate from now on (tokens earned so far are kept)."""
        with self._lock:
            self._refill()
            self.rate_per_s = rate_per_s

    def acquire(self) -> float:
        """Block until a token is due; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class AimdLimit:
    """How many calls may be in flight: additive increase, multiplicative decrease."""

    def __init__(self, maximum: int, *, minimum: int = 1, initial: int = 1):
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.window = min(max(initial, minimum), maximum)
        self.epoch = 0  # bumped by every decrease; see `on_throttle`
        self.peak = self.window
        self._credit = 0  # successes with a full window since the last change

    def on_success(self, window_was_full: bool) -> None:
        """A call succeeded: after `window` of them with a full window, one more slot."""
        if not window_was_full or self.window >= self.maximum:
            return
        self._credit += 1
        if self._credit >= self.window:
            self.window += 1
            self._credit = 0
            self.peak = max(self.peak, self.window)

    def on_throttle(self, sent_in_epoch: int) -> bool:
        """A call sent during `sent_in_epoch` was throttled: halve, once per round.

        Returns whether the limit was lowered.
        """
        if sent_in_epoch != self.epoch:
            return False  # sent before the last decrease: already accounted for
        self.window = max(self.minimum, (self.window + 1) // 2)
        self.epoch += 1
        self._credit = 0
        return True


@dataclass(frozen=True)
class Ticket:
    """A granted call: when it was sent, in which AIMD rounds, and whether it filled the window."""

    sent_at: float
    epoch: int
    rate_epoch: int
    window_full: bool


class Pacer:
    """Shared by the worker threads of one embedder: gates each call by concurrency and rate.

    Use `acquire()` before a call and exactly one of `succeeded`, `throttled` or `failed` after.

    Slots are granted first come, first served: a call retried after a throttle queues behind
    the calls already waiting instead of racing them for the slot that the window has just
    grown (which, unfair, tends to go to the thread that was just woken, so the same text would
    be the probe that is throttled again and again).

    A throttle always halves the window (once per round). When the window was not full, the
    token bucket was holding the rate back, so the quota itself is lower than `max_rps` (a
    BEDROCK_MAX_RPM set above the account's quota): then the bucket's rate is also cut by
    `rate_cut` (once per round), and it recovers by a tenth of `max_rps` per second of
    successful calls, the way botocore's adaptive retry mode paces a throttled client.
    """

    rate_cut = 0.7
    rate_recovery_per_s = 0.1  # of max_rps, per second of successful calls at the current rate

    def __init__(
        self,
        max_concurrency: int,
        max_rps: float | None = None,
        *,
        initial_concurrency: int = 1,
        window_s: float = 10.0,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.limit = AimdLimit(max_concurrency, initial=initial_concurrency)
        self.max_rps = max_rps
        self.bucket = TokenBucket(max_rps, clock=clock, sleep=sleep) if max_rps else None
        self._rate_epoch = 0
        self._queue: deque[object] = deque()  # calls waiting for a slot, first come first served
        self.window_s = window_s
        self._clock = clock
        self._cond = threading.Condition()
        self._slots = 0  # calls holding a slot (sending, or waiting for their token)
        self._sending = 0  # calls that have their token and are on the wire
        self._peak_sending = 0
        self._completed: deque[float] = deque()  # completion times of recent successes
        self.requests = 0
        self.throttles = 0

    def acquire(self) -> Ticket:
        """Wait for a concurrency slot, then for a token; returns the call's ticket."""
        with self._cond:
            me = object()
            self._queue.append(me)
            while self._queue[0] is not me or self._slots >= self.limit.window:
                self._cond.wait()
            self._queue.popleft()
            self._slots += 1
            if self._queue:
                self._cond.notify_all()  # the next in line may have a slot too
        try:
            if self.bucket:
                self.bucket.acquire()
        except BaseException:
            with self._cond:
                self._slots -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._sending += 1
            self._peak_sending = max(self._peak_sending, self._sending)
            self.requests += 1
            full = self._sending >= self.limit.window
            return Ticket(self._clock(), self.limit.epoch, self._rate_epoch, full)

    def succeeded(self, ticket: Ticket) -> None:
        with self._cond:
            self.limit.on_success(ticket.window_full)
            if self.bucket and self.bucket.rate_per_s < self.max_rps:
                step = self.rate_recovery_per_s * self.max_rps / self.bucket.rate_per_s
                self.bucket.set_rate(min(self.max_rps, self.bucket.rate_per_s + step))
            now = self._clock()
            self._completed.append(now)
            self._trim(now)
            self._release()

    def throttled(self, ticket: Ticket) -> None:
        with self._cond:
            self.throttles += 1
            self.limit.on_throttle(ticket.epoch)
            if self.bucket and not ticket.window_full and ticket.rate_epoch == self._rate_epoch:
                floor = self.max_rps / 20
                self.bucket.set_rate(max(floor, self.bucket.rate_per_s * self.rate_cut))
                self._rate_epoch += 1
            self._release()

    def failed(self, ticket: Ticket) -> None:
        """The call failed for another reason: free its slot, leave the limit alone."""
        with self._cond:
            self._release()

    def _release(self) -> None:
        self._sending -= 1
        self._slots -= 1
        self._cond.notify_all()  # the window may have grown by more than one slot

    def _trim(self, now: float) -> None:
        while self._completed and self._completed[0] < now - self.window_s:
            self._completed.popleft()

    def stats(self) -> dict:
        """Figures for `status()`: recent successful calls per second, concurrency reached."""
        with self._cond:
            now = self._clock()
            self._trim(now)
            recent = len(self._completed)
            span = min(self.window_s, now - self._completed[0]) if recent > 1 else 0.0
            return {
                "rate_rps": round((recent - 1) / span, 2) if span > 0 else 0.0,
                "max_rps": self.max_rps,
                "paced_rps": round(self.bucket.rate_per_s, 3) if self.bucket else None,
                "concurrency": self.limit.window,
                "peak_concurrency": self._peak_sending,
                "max_concurrency": self.limit.maximum,
                "requests": self.requests,
                "throttled": self.throttles,
            }
