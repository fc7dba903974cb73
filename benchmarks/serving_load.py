"""Load test of `bertology serve`: throughput and latency at several concurrencies, micro-batching against
one request per forward, and the bounded queue's 503s.

    python benchmarks/serving_load.py MODEL_FOLDER [--requests 400] [--seconds 30] [--texts 1]

Starts the server on loopback (a subprocess per configuration), fires at most --requests requests (and at
most --seconds per run) at concurrency 1, 8, 32 and 128 with a small keep-alive asyncio client (httpx only to wait for /ready), and prints requests/s,
p50 and p99 latency and error counts (503s apart). Then the ratio of throughput at concurrency 32 with
micro-batching to that with --no-batching, and a run with a tiny queue: every refused request must be a
503 and every accepted one must be answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time

import httpx

ENTRY = "import sys, bertology.cli.main as m; sys.exit(m.main())"
SENTENCES = ["the cat sat on the mat", "a dog is red", "where is john ?", "the new york city fox sat on a red mat"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`bertology serve` in a subprocess, ready when /ready answers 200."""

    def __init__(self, folder: str, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-c", ENTRY, "serve", folder, "--port", str(self.port),
                                         *options])
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start ({' '.join(options)})")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


class Connection:
    """One keep-alive HTTP/1.1 connection written on asyncio streams. The load generator must cost the shared 2
    cores little: httpx's async pool, at 128 connections, fed the server one request at a time (server-side
    batches of 1, latency <= 0.5 s, while the client measured p99 5 s), so it measured itself."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        payload = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def fire(url: str, requests: int, concurrency: int, seconds: float, texts: int) -> dict:
    latencies: list[float] = []
    counts = {"ok": 0, "503": 0, "errors": 0, "answered_ok": 0}
    next_index = 0
    stop_at = time.perf_counter() + seconds
    port = int(url.rsplit(":", 1)[1])

    async def worker() -> None:
        nonlocal next_index
        connection = Connection(port)
        while next_index < requests and time.perf_counter() < stop_at:
            i = next_index
            next_index += 1
            body = {"texts": [SENTENCES[(i + j) % len(SENTENCES)] for j in range(texts)]}
            start = time.perf_counter()
            try:
                status, headers, payload = await asyncio.wait_for(connection.post("/v1/classify", body), 60)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                counts["errors"] += 1
                await connection.close()
                continue
            latencies.append(time.perf_counter() - start)
            if status == 200:
                counts["ok"] += 1
                counts["answered_ok"] += len(json.loads(payload)["results"]) == texts
            elif status == 503:
                counts["503"] += 1
                assert "retry-after" in headers, "a 503 without Retry-After"
            else:
                counts["errors"] += 1
        await connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000 if latencies else float("nan")

    return {"concurrency": concurrency, "rps": counts["ok"] / elapsed, "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99), **counts}


def show(title: str, row: dict) -> None:
    print(f"{title:<22} c={row['concurrency']:<4} {row['rps']:8.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
          f"p99 {row['p99_ms']:7.1f} ms  ok {row['ok']}  503 {row['503']}  errors {row['errors']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a fine-tuned classifier folder (e.g. MiniLM)")
    parser.add_argument("--requests", type=int, default=400, help="requests per run at most")
    parser.add_argument("--seconds", type=float, default=30, help="seconds per run at most")
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--concurrency", default="1,8,32,128")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    results: dict[str, dict[int, dict]] = {}
    for name, options in (("micro-batching", ()), ("one per forward", ("--no-batching",))):
        server = Server(args.model, *options)
        try:
            results[name] = {}
            for level in levels if name == "micro-batching" else [32]:
                row = asyncio.run(fire(server.url, args.requests, level, args.seconds, args.texts))
                results[name][level] = row
                show(name, row)
        finally:
            server.stop()
    batched, single = results["micro-batching"].get(32), results["one per forward"][32]
    if batched and single["rps"]:
        print(f"throughput at concurrency 32: micro-batching / one per forward = {batched['rps'] / single['rps']:.2f}x")

    server = Server(args.model, "--queue-size", "2", "--max-batch", "1", "--max-wait-ms", "0")
    try:
        row = asyncio.run(fire(server.url, args.requests, 32, args.seconds, args.texts))
    finally:
        server.stop()
    show("tiny queue (2)", row)
    fine = row["errors"] == 0 and row["answered_ok"] == row["ok"] and row["503"] > 0
    print("tiny queue: " + ("every refused request got 503, every accepted one its answer" if fine else
                            f"FAILED (503 {row['503']}, errors {row['errors']}, incomplete answers "
                            f"{row['ok'] - row['answered_ok']})"))
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
