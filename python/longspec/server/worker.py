"""One engine, one generation at a time: a bounded queue of jobs and the thread that runs them.

The engine serialises its calls itself, but a server must not park one event-loop thread per
waiting request on that lock, must know how many requests wait (to refuse past a limit, and for
/metrics), and must be able to drop a request whose client left before its turn came. So the
HTTP side submits jobs here and reads their events from an asyncio queue; generation runs on this
module's thread, never on the event loop.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable

# Events a job reports to the request handler, in this order: any number of TEXT, then one of
# DONE (the GenerationOutput), ERROR (the exception) or SKIPPED (cancelled before it ran).
TEXT, DONE, ERROR, SKIPPED = "text", "done", "error", "skipped"


class Job:
    """One request's generation. ``run(job)`` executes on the worker thread and returns the
    engine's output; it should pass ``job.keep_going`` as the engine callback and report text
    through ``job.emit(TEXT, piece)``."""

    def __init__(self, run: Callable[["Job"], Any], loop: asyncio.AbstractEventLoop):
        self._run = run
        self._loop = loop
        self.events: asyncio.Queue = asyncio.Queue()
        self._cancelled = threading.Event()

    def run(self) -> Any:
        return self._run(self)

    def cancel(self) -> None:
        """Stops the generation at its next flush of tokens (or before it starts)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def keep_going(self, _new_tokens=None) -> bool:
        return not self._cancelled.is_set()

    def emit(self, kind: str, value: Any = None) -> None:
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:
            self._cancelled.set()  # the event loop is gone (server shutting down): nobody listens


class EngineWorker:
    """Runs jobs one after another on a dedicated thread.

    At most ``max_queue`` jobs wait while one runs; ``submit`` refuses more (the caller answers
    503). ``on_change(waiting, running)`` is told whenever those counts move (for /metrics).
    """

    def __init__(self, max_queue: int, on_change: Callable[[int, int], None] | None = None):
        if max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {max_queue}")
        self.max_queue = max_queue
        self._on_change = on_change or (lambda waiting, running: None)
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="longspec-engine", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return 0 if self._running is None else 1

    def submit(self, job: Job) -> bool:
        with self._lock:
            if self._closed or self._waiting + self.running > self.max_queue:
                return False
            self._waiting += 1
            self._jobs.put(job)
            self._changed()
        return True

    def _changed(self) -> None:  # called with the lock held
        self._on_change(self._waiting, self.running)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._waiting -= 1
                self._running = job
                self._changed()
            try:
                outcome = (SKIPPED, None) if job.cancelled else (DONE, job.run())
            except BaseException as exc:  # noqa: BLE001 - handed to the request's handler
                outcome = (ERROR, exc)
            # The engine is free before the request's handler hears of its end: a client that
            # sends its next request as soon as it has the answer must not find its finished job
            # still counted as running (with another request waiting, that read as a full queue
            # and answered 503).
            with self._lock:
                self._running = None
                self._changed()
            job.emit(*outcome)

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancels what runs and waits, drops what waits, and ends the thread."""
        with self._lock:
            self._closed = True
            if self._running is not None:
                self._running.cancel()
            pending = []
            while True:
                try:
                    pending.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            for job in pending:
                job.cancel()
                job.emit(SKIPPED)
            self._waiting = 0
            self._jobs.put(None)
            self._changed()
        self._thread.join(timeout)
