"""The HTTP routes: OpenAI-compatible completions and chat (full or streamed as server-sent
events), the model list, health and Prometheus metrics."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from . import protocol as P
from .metrics import ServerMetrics
from .worker import DONE, ERROR, SKIPPED, TEXT, EngineWorker, Job

# How often a request that waits for its turn, its answer or its next tokens checks that its
# client is still there and that the server is not shutting down.
_POLL_S = 0.25
_SHUTTING_DOWN = P.OpenAIError(503, "The server is shutting down.", type="server_error", code="shutting_down")


def _endpoint_of(request: Request) -> str:
    return "chat" if request.url.path.rstrip("/").endswith("chat/completions") else "completions"


def _error_response(err: P.OpenAIError) -> JSONResponse:
    headers = {"Retry-After": "1"} if err.status == 503 else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def _engine_error(exc: BaseException) -> P.OpenAIError:
    """An exception raised by the engine -> 400 for what the request asked (the engine's argument
    checks name the argument), 500 otherwise."""
    if isinstance(exc, (ValueError, TypeError, NotImplementedError)):
        return P.bad_request(str(exc))
    return P.OpenAIError(500, f"generation failed: {type(exc).__name__}: {exc}", type="server_error")


def _sse(obj: Any) -> str:
    return "data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n\n"


class _JobStream(StreamingResponse):
    """A streamed answer that always stops its generation when the response ends, however it
    ends (finished, client gone, server shutting down)."""

    def __init__(self, content, job: Job, on_end: Callable[[], None], **kwargs):
        super().__init__(content, **kwargs)
        self._job, self._on_end = job, on_end

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._job.cancel()
            self._on_end()


def create_app(engine, *, model_name: str, max_queue: int = 16, speculative: bool | None = None,
               tree: list[int] | None = None) -> FastAPI:
    """An ASGI app serving ``engine`` (a ``longspec.Engine`` with a tokenizer) as ``model_name``.

    At most ``max_queue`` requests wait while one generates; more are answered 503. Every request
    uses the engine's speculative settings given here (``speculative``, ``tree``; None and None:
    the engine's default for its device, ``Engine.speculative_default``)."""
    if engine.tokenizer is None:
        raise ValueError("the server needs an engine with its tokenizer")
    metrics = ServerMetrics()
    worker = EngineWorker(max_queue, metrics.queue_changed)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await asyncio.to_thread(worker.close)

    app = FastAPI(title="longspec", version=__version__, lifespan=lifespan)
    app.state.worker = worker
    app.state.metrics = metrics
    # Replaced by ``serve``: tells open requests to end (a stream would otherwise keep uvicorn's
    # graceful shutdown waiting until its last token).
    app.state.shutting_down = lambda: False

    # -- errors in OpenAI's shape -------------------------------------------------------------
    @app.exception_handler(P.OpenAIError)
    async def _openai_error(request: Request, err: P.OpenAIError):
        return _error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(request: Request, exc: RequestValidationError):
        metrics.requests.labels(_endpoint_of(request), "bad_request").inc()
        return _error_response(P.validation_error_to_openai(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error_response(P.OpenAIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                             type=kind))

    # -- the generation path --------------------------------------------------------------------
    def shutting_down() -> bool:
        return bool(app.state.shutting_down())

    async def next_event(job: Job, request: Request | None):
        """The job's next event; None once the client has disconnected (``request`` given: the
        handler still owns the connection) or the server is shutting down. The job is then
        cancelled: dropped if it has not started, stopped at its next flush if it has."""
        while not shutting_down():
            try:
                return await asyncio.wait_for(job.events.get(), _POLL_S)
            except asyncio.TimeoutError:
                if request is not None and await request.is_disconnected():
                    job.cancel()
                    return None
        job.cancel()
        return None

    async def handle(request: Request, endpoint: str, req, prepare: Callable[[], tuple[Callable, P.Sampling]]):
        started = time.perf_counter()

        def outcome(name: str) -> None:
            metrics.requests.labels(endpoint, name).inc()
            if name == "ok":
                metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

        try:
            if req.model != model_name:
                raise P.OpenAIError(404, f"The model '{req.model}' does not exist; this server serves "
                                         f"'{model_name}'.", param="model", code="model_not_found")
            generate, sampling = prepare()
        except P.OpenAIError:
            outcome("bad_request")
            raise
        streaming = bool(req.stream)
        include_usage = bool(streaming and req.stream_options and req.stream_options.include_usage)

        def run(job: Job):
            out = generate(**sampling.engine_kwargs(), speculative=speculative, tree=tree, callback=job.keep_going,
                           text_callback=(lambda piece: job.emit(TEXT, piece)) if streaming else None)
            metrics.record_generation(out.stats, len(out.tokens))
            return out

        job = Job(run, asyncio.get_running_loop())
        if not worker.submit(job):
            outcome("rejected")
            raise P.OpenAIError(503, f"The server is busy: {worker.waiting} request(s) already wait for the engine "
                                     f"(limit {worker.max_queue}, --max-queue). Retry later.",
                                type="server_error", code="queue_full")
        event = await next_event(job, request)
        if event is None:
            outcome("cancelled")
            if shutting_down():
                raise _SHUTTING_DOWN
            return Response(status_code=499)  # nobody reads it
        kind, value = event
        if kind == ERROR:
            err = _engine_error(value)
            outcome("bad_request" if err.status == 400 else "error")
            raise err
        if kind == SKIPPED:
            outcome("cancelled")
            raise _SHUTTING_DOWN
        shape = P.ResponseShape("chat" if endpoint == "chat" else "completion", model_name)

        if not streaming:  # no text_callback, so the one event is DONE
            out = value
            if job.cancelled:
                outcome("cancelled")
                return Response(status_code=499)
            outcome("ok")
            return JSONResponse(shape.full(out.text, P.finish_reason(out.finish_reason), out.stats["prompt_tokens"],
                                           len(out.tokens)))

        state = {"finished": False}

        async def events():
            nonlocal kind, value
            if shape.kind == "chat":
                yield _sse(shape.chunk("", first=True, with_usage_field=include_usage))
            while True:
                if kind == TEXT:
                    yield _sse(shape.chunk(value, with_usage_field=include_usage))
                elif kind == DONE:
                    yield _sse(shape.chunk(None, P.finish_reason(value.finish_reason), with_usage_field=include_usage))
                    if include_usage:
                        yield _sse(shape.usage_chunk(value.stats["prompt_tokens"], len(value.tokens)))
                    yield "data: [DONE]\n\n"
                    state["finished"] = True
                    outcome("ok")
                    return
                else:  # ERROR or SKIPPED after the stream began: say so in the stream, then end it
                    err = _engine_error(value) if kind == ERROR else _SHUTTING_DOWN
                    yield _sse(err.body())
                    yield "data: [DONE]\n\n"
                    state["finished"] = True
                    outcome("error")
                    return
                # Starlette notices a client that left; only shutdown needs watching here.
                event = await next_event(job, None)
                kind, value = event if event is not None else (SKIPPED, None)

        def on_end() -> None:
            if not state["finished"]:
                outcome("cancelled")

        return _JobStream(events(), job, on_end, media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/completions")
    async def completions(req: P.CompletionRequest, request: Request):
        def prepare():
            prompt, sampling = P.check_completion(req)
            return (lambda **kw: engine.generate(prompt, **kw)), sampling

        return await handle(request, "completions", req, prepare)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: P.ChatRequest, request: Request):
        def prepare():
            messages, sampling = P.check_chat(req)
            return (lambda **kw: engine.chat(messages, **kw)), sampling

        return await handle(request, "chat", req, prepare)

    # -- the rest ---------------------------------------------------------------------------------
    created = int(time.time())

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{
            "id": model_name, "object": "model", "created": created, "owned_by": "longspec",
            "max_model_len": engine.context_limit, "speculative": engine.speculates(speculative, tree),
        }]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name, "device": engine.device, "queue_depth": worker.waiting,
                "running": worker.running, "max_queue": worker.max_queue}

    @app.get("/metrics")
    async def prometheus_metrics():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app
