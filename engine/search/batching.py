"""Micro-batching: the requests that arrive together are answered by one call.

A classroom asks at the same moment, and most of a question's cost is fixed per call (an encoder
streams its weights once per call; Chroma pays one set-up per collection and call). So
`MicroBatcher.submit` does not call `process` once per request: a thread that finds no batch
running takes every waiting request (at most `max_batch`) and processes them in one call, while
the requests that arrive meanwhile wait for the next one. Nothing waits on a timer: a lone
request is processed at once, alone, exactly as without batching, and under load the batches
grow by themselves. At most `parallel` batches run at once (the searcher runs one at a time
and spreads its Chroma calls over the cores instead, see `engine.search.vectors`).

There is no background thread: the callers' own threads take turns processing, so nothing needs
starting or stopping. When a batch fails, each of its requests is tried again alone, so one bad
request fails only itself.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class _Slot(Generic[In, Out]):
    __slots__ = ("request", "answer", "error", "done")

    def __init__(self, request: In):
        self.request = request
        self.answer: Out | None = None
        self.error: BaseException | None = None
        self.done = False


class MicroBatcher(Generic[In, Out]):
    """Calls `process(requests) -> answers` (same order, same length) for requests that
    arrive together.

    Args:
        process: answers a list of requests.
        max_batch: most requests per call (1: every request alone).
        parallel: most calls running at once.
    """

    def __init__(
        self,
        process: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch: int = 16,
        parallel: int = 2,
    ):
        if max_batch < 1 or parallel < 1:
            raise ValueError("max_batch and parallel must be at least 1")
        self.process = process
        self.max_batch = max_batch
        self.parallel = parallel
        self._cond = threading.Condition()
        self._waiting: list[_Slot[In, Out]] = []
        self._running = 0
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # sizes of the last batches run

    def submit(self, request: In) -> Out:
        """The answer to `request`, processed alone or with others waiting at the same time.

        Raises:
            Whatever `process` raised for this request when it was tried alone.
        """
        slot: _Slot[In, Out] = _Slot(request)
        with self._cond:
            self._waiting.append(slot)
            while not slot.done:
                if self._running < self.parallel and self._waiting:
                    batch = self._waiting[: self.max_batch]
                    del self._waiting[: self.max_batch]
                    self._running += 1
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                        self._running -= 1
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if slot.error is not None:
            raise slot.error
        return slot.answer  # type: ignore[return-value]

    def _run(self, batch: list[_Slot[In, Out]]) -> None:
        """Answer every slot of `batch` (never raises: errors go to their slots)."""
        self.batch_sizes.append(len(batch))
        try:
            answers = list(self.process([slot.request for slot in batch]))
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers to {len(batch)} requests")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for slot in batch:  # one bad request fails only itself
                    self._run([slot])
        except BaseException as exc:  # e.g. KeyboardInterrupt: every waiting caller sees it
            for slot in batch:
                slot.error = exc
        else:
            for slot, answer in zip(batch, answers, strict=True):
                slot.answer = answer
        for slot in batch:
            slot.done = True
