"""The first-token-fair schedule itself (no model: a step records which job ran)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from wattserve_serving.engines.first_token import FirstTokenScheduler


@dataclass(eq=False)
class FakeJob:
    name: str
    tokens: int
    cancel: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    silent: int = 0  # tokens that give the client no text (held back) before the first one
    answered: bool = False

    def fail(self, exc: BaseException) -> None:
        self.error = exc

    def close(self) -> None:
        self.closed.set()


def run(jobs: list[FakeJob], parallel: int, fail_on: str = "") -> list[str]:
    order: list[str] = []
    gate = threading.Event()  # hold the first step until every job is submitted
    left = {j.name: j.tokens for j in jobs}

    def step(job: FakeJob) -> bool:
        gate.wait(5)
        order.append(job.name)
        if job.name == fail_on:
            raise ValueError("boom")
        left[job.name] -= 1
        job.answered = job.tokens - left[job.name] > job.silent
        return left[job.name] == 0

    sched: FirstTokenScheduler[FakeJob] = FirstTokenScheduler(step, parallel=parallel)
    for job in jobs:
        sched.submit(job)
    gate.set()
    for job in jobs:
        assert job.closed.wait(5), f"{job.name} never closed"
    sched.stop()
    return order


def test_every_job_gets_its_first_token_before_any_continues() -> None:
    order = run([FakeJob("a", 3), FakeJob("b", 3), FakeJob("c", 2)], parallel=8)
    assert order == ["a", "b", "c", "a", "a", "b", "b", "c"]


def test_parallel_one_serves_strictly_in_turn() -> None:
    order = run([FakeJob("a", 3), FakeJob("b", 2), FakeJob("c", 1)], parallel=1)
    assert order == ["a", "a", "a", "b", "b", "c"]


def test_beyond_parallel_jobs_wait_in_arrival_order() -> None:
    order = run([FakeJob("a", 2), FakeJob("b", 2), FakeJob("c", 2)], parallel=2)
    # c starts only when a finished, then gets its first token before b continues.
    assert order == ["a", "b", "a", "c", "b", "c"]


def test_a_failing_step_fails_that_job_alone() -> None:
    jobs = [FakeJob("a", 2), FakeJob("b", 2)]
    order = run(jobs, parallel=4, fail_on="a")
    assert isinstance(jobs[0].error, ValueError) and jobs[1].error is None
    assert order == ["a", "b", "b"]


def test_a_cancelled_job_is_closed_without_another_step() -> None:
    jobs = [FakeJob("a", 2), FakeJob("b", 5)]
    jobs[1].cancel.set()
    order = run(jobs, parallel=4)
    assert order == ["a", "a"] and jobs[1].closed.is_set()


def test_a_job_stays_first_until_the_client_has_seen_text() -> None:
    # a's first two tokens are held back (e.g. a stop-string prefix): it keeps priority.
    order = run([FakeJob("a", 4, silent=2), FakeJob("b", 2)], parallel=4)
    assert order == ["a", "a", "a", "b", "a", "b"]
