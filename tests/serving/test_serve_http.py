"""The service over real HTTP (uvicorn on a loopback port, httpx): endpoints, limits, 503, batching,
readiness, metrics and graceful shutdown."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest

from bertology.serving.app import create_app
from bertology.serving.handlers import Handler, Service, build_service
from bertology.serving.limits import Limits


class GatedHandler(Handler):
    """A classify handler whose forward waits for `gate` and records each batch (to observe batching)."""

    def __init__(self) -> None:
        super().__init__("classify", None)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def run(self, payloads):
        self.entered.set()
        self.gate.wait(20)
        self.batches.append(list(payloads))
        return [{"label": p, "probabilities": {p: 1.0}} for p in payloads]


def gated_service() -> tuple[Service, GatedHandler]:
    handler = GatedHandler()
    return Service("fake", {"classify": {"": handler}}), handler


def wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 20
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def classifier_service(toy_classifier):
    return build_service(str(toy_classifier))


def test_classify_embed_health_docs_and_metrics(classifier_service, serve, client_for):
    client = client_for(serve(create_app(classifier_service)))
    assert client.get("/health").json() == {"status": "ok"}
    wait_ready(client)
    texts = ["the cat sat on a mat", "a dog is red", "cat"]
    reply = client.post("/v1/classify", json={"texts": texts})
    assert reply.status_code == 200
    results = reply.json()["results"]
    assert len(results) == 3
    for result in results:
        assert result["label"] in ("cat", "dog")
        assert set(result["probabilities"]) == {"cat", "dog"}
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-6
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    alone = client.post("/v1/classify", json={"texts": [texts[1]]}).json()["results"][0]
    assert alone["probabilities"]["cat"] == pytest.approx(results[1]["probabilities"]["cat"], abs=1e-5)
    embedded = client.post("/v1/embed", json={"texts": ["the cat", "a dog"]}).json()
    assert embedded["dimension"] == 32 and len(embedded["embeddings"]) == 2
    assert embedded["embeddings"][0] != embedded["embeddings"][1]
    assert client.post("/v1/fill-mask", json={"texts": ["the [MASK]"]}).status_code == 404  # not a masked LM
    spec = client.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/embed", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics").text
    assert 'bertology_requests_total{endpoint="/v1/classify",status="200"} 2.0' in metrics
    assert "bertology_batch_size_bucket" in metrics and "bertology_queue_depth 0.0" in metrics
    assert 'bertology_request_latency_seconds_count{endpoint="/v1/embed"} 1.0' in metrics


def test_limits(classifier_service, serve, client_for):
    limits = Limits(max_texts=3, max_chars=20, max_body_bytes=400)
    client = client_for(serve(create_app(classifier_service, limits)))
    big = client.post("/v1/classify", content=b'{"texts": ["' + b"a" * 500 + b'"]}',
                      headers={"content-type": "application/json"})
    assert big.status_code == 413 and "limit is 400 bytes" in big.json()["detail"]
    empty = client.post("/v1/classify", json={"texts": []})
    assert empty.status_code == 422 and "'texts' is empty" in empty.json()["detail"]
    many = client.post("/v1/classify", json={"texts": ["cat"] * 4})
    assert many.status_code == 422 and "limit is 3 per request" in many.json()["detail"]
    long = client.post("/v1/classify", json={"texts": ["cat", "x" * 21]})
    assert long.status_code == 422 and "'texts[1]' has 21 characters; the limit is 20" in long.json()["detail"]
    assert client.post("/v1/classify", json={"texts": ["cat"], "path": "/etc/passwd"}).status_code == 422
    assert client.post("/v1/classify", json={"texts": ["cat"]}).status_code == 200


def test_full_queue_answers_503_with_retry_after_and_accepted_requests_finish(serve, client_for):
    service, handler = gated_service()
    server = serve(create_app(service, max_batch=1, max_wait_ms=0, queue_size=2, warm_up=lambda: None))
    client = client_for(server)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/v1/classify", json={"texts": ["a"]})
        assert handler.entered.wait(10)  # "a" is in the (blocked) forward; the queue is empty
        queued = pool.submit(client.post, "/v1/classify", json={"texts": ["b", "c"]})
        deadline = time.monotonic() + 10
        while "bertology_queue_depth 2.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = client.post("/v1/classify", json={"texts": ["d"]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "cannot take 1 more" in refused.json()["detail"]
        handler.gate.set()
        assert first.result(20).json()["results"][0]["label"] == "a"
        assert [r["label"] for r in queued.result(20).json()["results"]] == ["b", "c"]
    assert 'status="503"' in client.get("/metrics").text


def test_concurrent_requests_share_forwards_and_get_their_own_results(serve, client_for):
    service, handler = gated_service()
    handler.gate.set()
    client = client_for(serve(create_app(service, max_batch=32, max_wait_ms=200, warm_up=lambda: None)))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: client.post("/v1/classify", json={"texts": [f"r{i}a", f"r{i}b"]}),
                                range(8)))
    for i, reply in enumerate(replies):
        assert [r["label"] for r in reply.json()["results"]] == [f"r{i}a", f"r{i}b"]
    assert len(handler.batches) < 8
    assert sorted(t for b in handler.batches for t in b) == sorted(f"r{i}{s}" for i in range(8) for s in "ab")


def test_ready_only_after_warm_up(serve, client_for):
    service, handler = gated_service()
    warmed = threading.Event()
    client = client_for(serve(create_app(service, warm_up=lambda: warmed.wait(20))))
    assert client.get("/health").status_code == 200
    reply = client.get("/ready")
    assert reply.status_code == 503 and reply.json()["status"] == "warming up"
    warmed.set()
    wait_ready(client)
    assert client.get("/ready").json()["endpoints"] == ["classify"]


def test_graceful_shutdown_finishes_requests_in_flight(serve, client_for):
    service, handler = gated_service()
    server = serve(create_app(service, max_batch=2, max_wait_ms=0, warm_up=lambda: None))
    client_for(server)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        inflight = [pool.submit(httpx.post, f"{server.url}/v1/classify", json={"texts": [f"t{i}"]}, timeout=30)
                    for i in range(3)]
        assert handler.entered.wait(10)
        time.sleep(0.2)  # the other requests are queued behind the blocked forward
        stopping = pool.submit(server.stop)
        time.sleep(0.3)
        assert server.thread.is_alive()  # waiting for the requests in flight
        handler.gate.set()
        assert [f.result(20).status_code for f in inflight] == [200, 200, 200]
        assert sorted(f.result(0).json()["results"][0]["label"] for f in inflight) == ["t0", "t1", "t2"]
        stopping.result(30)
    assert not server.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)
