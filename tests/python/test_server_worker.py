"""The server's engine worker on its own (no HTTP): a job's end reaches its handler only once the
engine is free again, so a client that sends its next request at once is never refused for its
own finished job (test_server's two sequential clients once got a 503 under load that way)."""
from __future__ import annotations

import asyncio
import threading

from longspec.server.worker import DONE, ERROR, EngineWorker, Job


def _run_one(run):
    loop = asyncio.new_event_loop()
    worker = EngineWorker(max_queue=1)
    job = Job(run, loop)
    seen = []
    emit = job.emit

    def recording_emit(kind, value=None):
        seen.append((kind, worker.running))  # what a handler woken by this event would find
        emit(kind, value)

    job.emit = recording_emit
    try:
        assert worker.submit(job)
        kind, value = loop.run_until_complete(asyncio.wait_for(job.events.get(), 30))
    finally:
        worker.close()
        loop.close()
    return kind, value, seen


def test_a_finished_job_no_longer_counts_as_running_when_its_handler_hears_of_it():
    kind, value, seen = _run_one(lambda job: "the output")
    assert (kind, value) == (DONE, "the output")
    assert seen == [(DONE, 0)]


def test_a_failed_job_too():
    def fail(job):
        raise ValueError("bad request")

    kind, value, seen = _run_one(fail)
    assert kind == ERROR and isinstance(value, ValueError)
    assert seen == [(ERROR, 0)]


def test_the_queue_limit_counts_waiting_and_running_jobs():
    loop = asyncio.new_event_loop()
    worker = EngineWorker(max_queue=1)
    gate = threading.Event()
    jobs = [Job(lambda job: gate.wait(30), loop) for _ in range(3)]
    try:
        assert worker.submit(jobs[0])
        assert worker.submit(jobs[1])  # one runs (or is about to), one waits
        assert not worker.submit(jobs[2])  # past the limit
        gate.set()
    finally:
        worker.close()
        loop.close()

