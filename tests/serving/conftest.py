"""Shared fixtures of the serving tests: toy model folders and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import uvicorn

from bertology.serving.app import GracefulServer


class RunningServer:
    """uvicorn serving `app` in a background thread, on a socket bound before it starts (no port race)."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = GracefulServer(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=30))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 30) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM handler sets
        self.thread.join(timeout)


@pytest.fixture
def serve():
    """`serve(app) -> RunningServer`; every server started is stopped after the test."""
    started: list[RunningServer] = []

    def start(app) -> RunningServer:
        server = RunningServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def toy_classifier(tmp_path_factory, fine_tune_toy) -> Path:
    """A fine-tuned toy classifier (cat / dog) folder."""
    root = fine_tune_toy(tmp_path_factory.mktemp("serve-cls"), "run", 2)
    return root / "run" / "model"


@pytest.fixture(scope="session")
def toy_mlm(tmp_path_factory) -> Path:
    """A tiny masked-LM folder with the toy workspace's WordPiece vocabulary."""
    from bertology import BertConfig
    from bertology.models.bert import BertForMaskedLM
    from bertology.tokenization import Tokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             *"the a is on cat dog mat sat john paris city in red fox new york who where ?".split()]
    folder = tmp_path_factory.mktemp("serve-mlm")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    Tokenizer.from_pretrained(folder / "vocab.txt").save_pretrained(folder)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    return folder


@pytest.fixture
def client_for() -> Iterator:
    import httpx

    clients: list[httpx.Client] = []

    def make(server: RunningServer) -> httpx.Client:
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
