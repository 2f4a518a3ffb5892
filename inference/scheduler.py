"""Who runs next: the priority queue of one engine and the process-wide urgent-work count.

Requests queue by `Priority` (lower first, then in arrival order). Background requests
(`Priority.BACKGROUND` and above) yield to urgent ones in every engine of the process: a
background job starts only when no urgent request is queued or running anywhere
(`URGENT_WORK`), and a new urgent request preempts background jobs running anywhere (each
engine stops its running batch at the next token and queues it again).
"""

from __future__ import annotations

import itertools
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from codet5_lsp.inference.generation import GenerationRequest, Priority


class Preemptible(Protocol):
    def preempt_background_for(self, priority: int) -> None:
        """Stop the running batch at its next token if it is background work less urgent
        than `priority` (it is queued again)."""


class UrgentWork:
    """Process-wide count of urgent (non-background) requests queued or running, in every
    engine. The completion and summary models are often two engines (two worker threads);
    background work in one must yield to a completion in the other too, so a background job
    starts only when this count is zero, and a new urgent request preempts background jobs
    running anywhere."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self.engines: weakref.WeakSet[Preemptible] = weakref.WeakSet()

    def begin(self, priority: int) -> None:
        with self._changed:
            self._count += 1
        for engine in list(self.engines):
            engine.preempt_background_for(priority)

    def end(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    @property
    def busy(self) -> bool:
        return self._count > 0

    def wait_until_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


URGENT_WORK = UrgentWork()


@dataclass(order=True)
class Job:
    """One queued request; `request` None is the sentinel that stops a worker."""

    priority: int
    seq: int
    request: GenerationRequest | None = field(compare=False)
    cancel: threading.Event = field(compare=False)
    future: Future = field(compare=False)


class JobQueue:
    """One engine's queue: by priority, then arrival; urgent jobs count in URGENT_WORK
    from `submit` until their future is done."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[Job] = queue.PriorityQueue()
        self._seq = itertools.count()

    def submit(self, request: GenerationRequest, cancel: threading.Event) -> Job:
        job = Job(request.priority, next(self._seq), request, cancel, Future())
        if not Priority.is_background(request.priority):
            URGENT_WORK.begin(request.priority)
            job.future.add_done_callback(lambda _f: URGENT_WORK.end())
        self._queue.put(job)
        return job

    def stop(self) -> None:
        """Queue the sentinel that ends the worker (before any other job)."""
        self._queue.put(Job(-1, -1, None, threading.Event(), Future()))

    def put(self, job: Job) -> None:
        """Queue a job again (preempted, or waiting for urgent work elsewhere)."""
        self._queue.put(job)

    def get(self) -> Job:
        return self._queue.get()

    def get_nowait(self) -> Job | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def more_urgent_waiting(self, priority: int) -> bool:
        with self._queue.mutex:
            return any(j.priority < priority for j in self._queue.queue)

    def take_compatible(
        self,
        first: Job,
        limit: int,
        compatible: Callable[[GenerationRequest, GenerationRequest], bool],
    ) -> list[Job]:
        """Up to `limit` queued jobs whose requests can share a batch with `first`'s; the
        others stay queued."""
        taken: list[Job] = []
        others: list[Job] = []
        assert first.request is not None
        while len(taken) < limit:
            job = self.get_nowait()
            if job is None:
                break
            if job.request is None:
                others.append(job)
                break
            if compatible(job.request, first.request):
                taken.append(job)
            else:
                others.append(job)
        for job in others:
            self._queue.put(job)
        return taken


def wait_for_no_urgent_work(give_up: Callable[[], bool]) -> bool:
    """Block while any engine has urgent work; False as soon as `give_up()` says to look at
    the queue again (something more urgent arrived here, or the engine is closing)."""
    while not URGENT_WORK.wait_until_idle(0.05):
        if give_up():
            return False
    return True
