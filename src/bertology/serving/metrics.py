"""Prometheus metrics of one service, in a registry of its own (two apps in one process do not collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServingMetrics"]

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bertology_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("bertology_request_latency_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("bertology_batch_size", "Texts per forward pass", ["endpoint"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.forward_seconds = Histogram("bertology_forward_seconds", "Time of one batched forward pass",
                                         ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("bertology_queue_depth", "Texts waiting for a forward pass", registry=self.registry)
        self.queue_depth.set_function(lambda: float(queue_depth()))

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, endpoint: str, size: int, seconds: float) -> None:
        self.batch_size.labels(endpoint).observe(size)
        self.forward_seconds.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
