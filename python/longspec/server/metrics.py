"""Prometheus metrics of one server (its own registry, so several apps in one process never share
counters)."""
from __future__ import annotations

import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

OUTCOMES = ("ok", "bad_request", "rejected", "cancelled", "error")


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("longspec_requests", "HTTP generation requests by endpoint and outcome "
                                "(ok, bad_request, rejected = queue full, cancelled = client left, error)",
                                ["endpoint", "outcome"], registry=r)
        self.prompt_tokens = Counter("longspec_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("longspec_generation_tokens",
                                         "Tokens generated (cancelled requests included)", registry=r)
        self.decode_seconds = Counter("longspec_decode_seconds",
                                      "Time spent decoding after the prompt (tokens/s = rate of "
                                      "generation_tokens / rate of decode_seconds)", registry=r)
        self.spec_rounds = Counter("longspec_speculative_rounds", "Speculative rounds (draft + verify)", registry=r)
        self.spec_tokens = Counter("longspec_speculative_tokens", "Tokens emitted by speculative rounds", registry=r)
        self.tau = Gauge("longspec_mean_accepted_tokens",
                         "tau: mean tokens emitted per speculative round over all requests served", registry=r)
        self.last_tokens_per_s = Gauge("longspec_last_request_tokens_per_second",
                                       "Decode speed of the last finished request", registry=r)
        self.queue_depth = Gauge("longspec_queue_depth", "Requests waiting for the engine", registry=r)
        self.running = Gauge("longspec_requests_running", "Requests generating now (0 or 1)", registry=r)
        self.latency = Histogram("longspec_request_duration_seconds", "Time from arrival to the last token",
                                 ["endpoint"], registry=r,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self._lock = threading.Lock()
        self._rounds = 0
        self._round_tokens = 0.0
        for endpoint in ("completions", "chat"):
            for outcome in OUTCOMES:
                self.requests.labels(endpoint, outcome)  # every series exists from the start

    def queue_changed(self, waiting: int, running: int) -> None:
        self.queue_depth.set(waiting)
        self.running.set(running)

    def record_generation(self, stats: dict, new_tokens: int) -> None:
        """Called once per generation that ran (finished or cancelled) with the engine's stats."""
        self.prompt_tokens.inc(stats.get("prompt_tokens", 0))
        self.generation_tokens.inc(new_tokens)
        self.decode_seconds.inc(max(0.0, float(stats.get("decode_s", 0.0))))
        if stats.get("tokens_per_s"):
            self.last_tokens_per_s.set(stats["tokens_per_s"])
        rounds = int(stats.get("rounds", 0) or 0)
        if stats.get("speculative") and rounds > 0:
            emitted = rounds * float(stats.get("mean_accepted", 0.0))
            self.spec_rounds.inc(rounds)
            self.spec_tokens.inc(emitted)
            with self._lock:
                self._rounds += rounds
                self._round_tokens += emitted
                self.tau.set(self._round_tokens / self._rounds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
