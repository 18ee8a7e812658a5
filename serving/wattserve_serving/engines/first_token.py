"""First-token-fair scheduling of generations that share one engine thread.

A single llama.cpp context computes one token at a time. Served strictly in turn, the n-th
of n simultaneous requests waits for all n-1 earlier ones to *finish* before its first
token: a burst of requests (e.g. the ones an activator held through a cold start) sees its
time to first token grow with the burst. This scheduler instead runs, between any two
tokens, the **oldest request that has no token yet** (its prefill and first token; "first
token" is the first one that gives the client text), and
only when every request has its first token continues the **oldest** running one to its
end (FIFO, so completion order and the total work stay those of serving in turn).

The scheduler knows nothing of llama.cpp: ``step(job)`` computes one token of a job and
says whether it finished. A switch from one job to another costs the engine a re-prefill of
the tokens the two do not share (``llamacpp_kv.ensure_cached``); each job is switched
away from at most once per request that arrives while it runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("wattserve_serving")


class Job(Protocol):
    cancel: threading.Event
    answered: bool  # the client has seen text (a token held back by a stop-string prefix or
    # an incomplete UTF-8 character is not an answer yet)

    def fail(self, exc: BaseException) -> None: ...

    def close(self) -> None: ...


J = TypeVar("J", bound=Job)


class FirstTokenScheduler(Generic[J]):
    """One worker thread; ``submit`` from any thread; ``stop`` ends the thread.

    At most ``parallel`` jobs are interleaved; later ones wait in arrival order (``parallel``
    1: strictly in turn, each job run to its end)."""

    def __init__(self, step: Callable[[J], bool], parallel: int = 1,
                 name: str = "first-token") -> None:
        self._step = step
        self.parallel = max(1, parallel)  # jobs interleaved at once; the rest wait in order
        self._inbox: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.switches = 0  # a different job ran than the one before (re-prefills, at most)

    def submit(self, job: J) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        self._inbox.put(job)

    def stop(self) -> None:
        self._inbox.put(None)

    def _run(self) -> None:
        waiting: deque[J] = deque()  # beyond `parallel`, in arrival order
        fresh: deque[J] = deque()  # no token yet, oldest first
        running: deque[J] = deque()  # first token out, oldest first
        last: J | None = None
        while True:
            block = not waiting and not fresh and not running
            try:
                while True:
                    item = self._inbox.get(block=block)
                    block = False
                    if item is None:
                        for job in (*fresh, *running, *waiting):
                            job.close()
                        return
                    waiting.append(item)
            except queue.Empty:
                pass
            while waiting and len(fresh) + len(running) < self.parallel:
                fresh.append(waiting.popleft())
            if not fresh and not running:
                continue
            first = bool(fresh)
            job = fresh[0] if first else running[0]
            if job.cancel.is_set():
                (fresh if first else running).popleft()
                job.close()
                continue
            if last is not None and job is not last:
                self.switches += 1
            last = job
            try:
                finished = self._step(job)
            except BaseException as exc:  # reported to that job's client
                job.fail(exc)
                finished = True
            if first:
                if finished:
                    fresh.popleft()
                elif job.answered:
                    running.append(fresh.popleft())
            elif finished:
                running.popleft()
            if finished:
                job.close()
