"""`bertology serve`: an HTTP service over a model folder, with dynamic micro-batching, limits and metrics.

The pieces stay apart so each can be tested alone: `batcher` (requests -> shared forward passes in one
worker thread), `handlers` (what a folder can answer, each as `run(payloads) -> results`), `limits`
(body size, texts, characters), `metrics` (Prometheus) and `app` (the FastAPI routes and the uvicorn server).
"""

from .batcher import MicroBatcher, QueueFull
from .limits import Limits

__all__ = ["Limits", "MicroBatcher", "QueueFull"]
