"""`bertology serve`: an HTTP service for what a model folder supports, with dynamic micro-batching."""

from __future__ import annotations

import argparse


def _adapter(value: str) -> tuple[str, str]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER, got {value!r}")
    return name, folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model folder over HTTP (classify, tag, qa, fill-mask, embed)",
                       description="Serve MODEL_FOLDER over HTTP: a fine-tuned folder's task (/v1/classify, /v1/tag, "
                                   "/v1/qa), /v1/fill-mask for a masked-LM folder, /v1/embed for any encoder; "
                                   "/health, /ready, /metrics and OpenAPI docs at /docs. Requests arriving within "
                                   "--max-wait-ms share one forward pass of up to --max-batch texts.")
    p.add_argument("model", metavar="MODEL_FOLDER", help="fine-tuned, encoder or masked-LM model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=32, help="texts per forward pass (default 32; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a text waits for others (default 5)")
    p.add_argument("--no-batching", action="store_true", help="one request per forward (--max-batch 1, no wait)")
    p.add_argument("--queue-size", type=int, default=256, help="texts waiting at most; beyond: 503 (default 256)")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request (default 64)")
    p.add_argument("--max-chars", type=int, default=2000, help="characters per text (default 2000)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body size (default 1 MiB)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (torch backend)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    p.add_argument("--adapter", action="append", type=_adapter, default=[], metavar="NAME=FOLDER",
                   help="a folder fine-tuned with method adapter/lora over MODEL_FOLDER; requests pick it with "
                        "\"adapter\": NAME (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..errors import ConfigError
    from ..serving.app import GracefulServer, create_app
    from ..serving.handlers import build_service
    from ..serving.limits import Limits

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must lie in 1..65535, got {args.port}")
    for name in ("max_batch", "queue_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_wait_ms < 0:
        raise ConfigError(f"--max-wait-ms must be >= 0, got {args.max_wait_ms}")
    limits = Limits(args.max_texts, args.max_chars, args.max_body_bytes)
    max_batch, max_wait = (1, 0.0) if args.no_batching else (args.max_batch, args.max_wait_ms)
    service = build_service(args.model, device=args.device, backend=args.backend, bf16=args.bf16,
                            adapters=args.adapter)  # every folder error comes before the port is bound

    import uvicorn

    sock = _listen(args.host, args.port)  # before the app starts: a busy port is the user's error, said in one line
    app = create_app(service, limits, max_batch, max_wait, args.queue_size)
    print(f"bertology serve: {args.model} on http://{args.host}:{args.port} ({service.describe()})", file=sys.stderr,
          flush=True)
    server = GracefulServer(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           timeout_graceful_shutdown=30))
    server.run(sockets=[sock])
    return 0 if server.started else 2


def _listen(host: str, port: int):
    """A socket bound to host:port, or a ConfigError saying why not (port in use, address not on this machine)."""
    import socket

    from ..errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    # proto named: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP; with proto 0 every
    # answer waited ~45 ms for the client's delayed ACK (measured: 64 ms against 19 ms per request at concurrency 1)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "; another process listens there: pick another --port" if exc.errno == 98 else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    sock.set_inheritable(True)
    return sock
