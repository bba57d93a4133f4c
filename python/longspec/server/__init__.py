"""``longspec serve``: an OpenAI-compatible HTTP server over one engine.

Needs the ``serve`` extra (``pip install "longspec[serve]"``: FastAPI, uvicorn, prometheus-client);
``import longspec`` never imports it.

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (``"stream": true`` gives
server-sent events ending in ``data: [DONE]``), ``GET /v1/models``, ``GET /health``,
``GET /metrics`` (Prometheus). Requests queue for the one engine (one generation at a time); past
``max_queue`` waiting requests the answer is 503; a client that disconnects stops its generation.
"""
from __future__ import annotations

from .app import create_app

__all__ = ["create_app", "serve"]


def serve(engine, *, model_name: str, host: str = "127.0.0.1", port: int = 8000, max_queue: int = 16,
          speculative: bool | None = None, tree: list[int] | None = None, log_level: str = "info") -> None:
    """Serves ``engine`` until interrupted (Ctrl-C / SIGTERM)."""
    import uvicorn

    app = create_app(engine, model_name=model_name, max_queue=max_queue, speculative=speculative, tree=tree)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           timeout_graceful_shutdown=10))
    # On Ctrl-C / SIGTERM open requests end at once (a stream with an error event and [DONE],
    # its generation stopped) instead of keeping the shutdown waiting for their last token.
    app.state.shutting_down = lambda: server.should_exit
    server.run()
