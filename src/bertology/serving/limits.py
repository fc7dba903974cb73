"""Request limits: body size (413, checked before the body is parsed), texts per request and characters per
text (422 naming the text and the limit). Every message names the option that raises the limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BodyLimit", "Limits", "RequestError"]


class RequestError(Exception):
    """A request the service will not run, with the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Limits:
    max_texts: int = 64
    max_chars: int = 2000
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    def check_texts(self, texts: Sequence[str], field: str = "texts") -> None:
        """422 for an empty list, too many texts, or a text over `max_chars` (naming its index)."""
        if not texts:
            raise RequestError(422, f"'{field}' is empty; send 1 to {self.max_texts} texts")
        if len(texts) > self.max_texts:
            raise RequestError(422, f"'{field}' holds {len(texts)} texts; the limit is {self.max_texts} per request "
                                    "(--max-texts)")
        for index, text in enumerate(texts):
            self.check_text(text, f"{field}[{index}]")

    def check_text(self, text: str, field: str) -> None:
        if len(text) > self.max_chars:
            raise RequestError(422, f"'{field}' has {len(text)} characters; the limit is {self.max_chars} per text "
                                    "(--max-chars)")
        if not text.strip():
            raise RequestError(422, f"'{field}' is empty or blank")


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes gets 413 before anything parses it (by Content-Length when
    sent, else by counting what arrives), so a huge upload costs neither memory nor a JSON parse."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, size: int) -> None:
        detail = (f"request body is {size}{'+' if size > self.limit else ''} bytes; the limit is {self.limit} "
                  "bytes (--max-body-bytes)")
        payload = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
