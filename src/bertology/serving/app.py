"""The FastAPI app over a `Service` and its `MicroBatcher`, and the uvicorn server that drains on shutdown.

Routes exist only for what the folder supports (see `handlers`). Requests are checked against `Limits`
before queueing; a full queue answers 503 with Retry-After at once. `/ready` is 503 until the warm-up
forward ran. On SIGTERM/SIGINT uvicorn stops accepting and waits for the requests in flight (their
batches complete), then the batcher drains and the process exits 0 (`GracefulServer` swallows the signal
uvicorn would re-raise after a graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from .batcher import Closed, MicroBatcher, QueueFull
from .handlers import Service
from .limits import BodyLimit, Limits, RequestError
from .metrics import ServingMetrics

logger = logging.getLogger("bertology")

__all__ = ["GracefulServer", "create_app"]

RETRY_AFTER_S = 1


# ------------------------------------------------------------------------------------ request/response models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextsRequest(_Strict):
    texts: list[str] = Field(description="the texts, one result each, in this order")
    adapter: str | None = Field(None, description="adapter name (servers started with --adapter)")


class FillMaskRequest(_Strict):
    texts: list[str] = Field(description="texts holding [MASK]")
    top_k: int = Field(5, ge=1, le=50, description="fillers per mask")


class EmbedRequest(_Strict):
    texts: list[str]


class QARequest(_Strict):
    question: str
    context: str
    adapter: str | None = None


class ClassifyResult(BaseModel):
    label: str | list[str]
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    results: list[ClassifyResult]


class TagResult(BaseModel):
    tokens: list[str]
    tags: list[str]


class TagResponse(BaseModel):
    results: list[TagResult]


class QAResponse(BaseModel):
    answer: str


class Filler(BaseModel):
    token: str
    probability: float


class FillMaskResponse(BaseModel):
    results: list[list[list[Filler]]] = Field(description="per text, per mask, the top-k fillers")


class EmbedResponse(BaseModel):
    dimension: int
    embeddings: list[list[float]]


# ------------------------------------------------------------------------------------ the app
class _State:
    def __init__(self, service: Service, batcher: MicroBatcher, limits: Limits, metrics: ServingMetrics) -> None:
        self.service, self.batcher, self.limits, self.metrics = service, batcher, limits, metrics
        self.ready = threading.Event()
        self.warm_up_error: str | None = None


def create_app(service: Service, limits: Limits | None = None, max_batch: int = 32, max_wait_ms: float = 5.0,
               queue_size: int = 256, warm_up: Callable[[], None] | None = None) -> FastAPI:
    """The app; the batcher starts with it. `warm_up` (default: one forward per handler) runs in a thread at
    startup and `/ready` turns 200 when it returns."""
    limits = limits or Limits()
    metrics: ServingMetrics | None = None

    def on_batch(key: Any, size: int, seconds: float) -> None:
        if metrics is not None:
            metrics.observe_batch(key[0], size, seconds)

    batcher = MicroBatcher(service.run, max_batch, max_wait_ms, queue_size, on_batch=on_batch)
    metrics = ServingMetrics(lambda: batcher.depth)
    state = _State(service, batcher, limits, metrics)

    def warm() -> None:
        try:
            (warm_up or service.warm_up)()
        except Exception as exc:  # noqa: BLE001 - reported by /ready and the log, the process stays up
            state.warm_up_error = f"{type(exc).__name__}: {exc}"
            logger.error("warm-up failed: %s", state.warm_up_error)
            return
        state.ready.set()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=warm, name="bertology-warm-up", daemon=True).start()
        yield
        await asyncio.to_thread(batcher.close)  # uvicorn has finished the requests in flight; drain the rest

    app = FastAPI(title="bertology serve", description=f"Model folder {service.folder}: {service.describe()}",
                  lifespan=lifespan)
    app.state.serving = state

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "other") if route is not None else "other"
        metrics.observe_request(endpoint, response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.get("/health", summary="the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="the model is loaded and warmed up (503 before)")
    async def ready() -> JSONResponse:
        if state.ready.is_set():
            return JSONResponse({"status": "ready", "endpoints": list(service.handlers)})
        reason = f"warm-up failed: {state.warm_up_error}" if state.warm_up_error else "warming up"
        return JSONResponse({"status": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def submit(endpoint: str, adapter: str | None, payloads: list[Any]) -> list[Any]:
        handler, name = pick(endpoint, adapter)
        for index, payload in enumerate(payloads):
            handler.validate(payload, f"texts[{index}]")
        lengths = [handler.length(p) for p in payloads]
        try:
            futures = batcher.submit((endpoint, name), payloads, lengths)
        except QueueFull as exc:
            raise RequestError(503, str(exc), {"Retry-After": str(RETRY_AFTER_S)}) from None
        except Closed as exc:
            raise RequestError(503, str(exc), {"Retry-After": str(RETRY_AFTER_S)}) from None
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def pick(endpoint: str, adapter: str | None) -> tuple[Any, str]:
        by_adapter = service.handlers[endpoint]
        if adapter is None:
            name = next(iter(by_adapter))
            return by_adapter[name], name
        if adapter not in by_adapter:
            known = sorted(n for n in by_adapter if n)
            raise RequestError(422, f"unknown adapter {adapter!r} for /v1/{endpoint}; known adapters: {known}")
        return by_adapter[adapter], adapter

    handlers = service.handlers
    if "classify" in handlers:
        @app.post("/v1/classify", response_model=ClassifyResponse, summary="labels and probabilities per text")
        async def classify(body: TextsRequest) -> dict[str, Any]:
            limits.check_texts(body.texts)
            return {"results": await submit("classify", body.adapter, body.texts)}

    if "tag" in handlers:
        @app.post("/v1/tag", response_model=TagResponse, summary="one tag per whitespace-separated word")
        async def tag(body: TextsRequest) -> dict[str, Any]:
            limits.check_texts(body.texts)
            return {"results": await submit("tag", body.adapter, body.texts)}

    if "qa" in handlers:
        @app.post("/v1/qa", response_model=QAResponse, summary="the answer span of the question in the context")
        async def qa(body: QARequest) -> dict[str, Any]:
            limits.check_text(body.question, "question")
            limits.check_text(body.context, "context")
            (result,) = await submit("qa", body.adapter, [{"question": body.question, "context": body.context}])
            return result

    if "fill-mask" in handlers:
        mask = next(iter(handlers["fill-mask"].values())).tokenizer.mask_token

        @app.post("/v1/fill-mask", response_model=FillMaskResponse, summary="top-k fillers of each [MASK]")
        async def fill_mask(body: FillMaskRequest) -> dict[str, Any]:
            limits.check_texts(body.texts)
            payloads = [{"text": t.replace("[MASK]", mask), "top_k": body.top_k} for t in body.texts]
            return {"results": await submit("fill-mask", None, payloads)}

    if "embed" in handlers:
        @app.post("/v1/embed", response_model=EmbedResponse, summary="one sentence embedding (mean pooled) per text")
        async def embed(body: EmbedRequest) -> dict[str, Any]:
            limits.check_texts(body.texts)
            vectors = await submit("embed", None, body.texts)
            return {"dimension": len(vectors[0]), "embeddings": vectors}

    return BodyLimit(app, limits.max_body_bytes)  # type: ignore[return-value]


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown: SIGTERM/SIGINT stop
    accepting, finish what is in flight, and the command exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
