"""What a model folder can answer, each capability as a handler the batcher calls with a batch of payloads.

A handler's `run(payloads)` tokenizes, runs one forward and decodes, in the batcher's worker thread only
(our QA and tagging encoders drive the tokenizer's backend directly, so one thread owns it); `length`
(token count, for grouping by length) runs in the request path on a copy of the tokenizer's backend.
`build_service` reads the folder once at start and decides the endpoints:

- a fine-tuned folder (task.json): its task (classification -> classify, tagging -> tag, qa -> qa) and, on
  torch, sentence embeddings from its encoder;
- an encoder folder (config.json): embeddings; fill-mask too when it has a masked-LM head (torch only);
- `--adapter NAME=FOLDER`: folders fine-tuned with method adapter or lora over the base folder; their
  adapters are loaded onto one shared encoder and switched per batch (batches are grouped by adapter).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

logger = logging.getLogger("bertology")

__all__ = ["ENDPOINTS", "Handler", "Service", "build_service"]

#: endpoint -> the task kind that answers it
TASK_ENDPOINTS = {"classification": "classify", "tagging": "tag", "qa": "qa"}
ENDPOINTS = ("classify", "tag", "qa", "fill-mask", "embed")


@dataclass
class Handler:
    """One endpoint of one model (or one adapter): subclasses define `run` and `warm_up_payload`."""

    endpoint: str
    tokenizer: Any
    adapter: str | None = None
    _counter: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        backend = getattr(self.tokenizer, "backend", None)
        if backend is not None:
            from tokenizers import Tokenizer as RustTokenizer

            self._counter = RustTokenizer.from_str(backend.to_str())

    def length(self, payload: Any) -> int:
        """Token count of a payload (characters when the tokenizer has no fast backend)."""
        text = payload if isinstance(payload, str) else " ".join(str(v) for v in payload.values())
        if self._counter is None:
            return len(text)
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def run(self, payloads: list[Any]) -> list[Any]:
        raise NotImplementedError

    def warm_up_payload(self) -> Any:
        return "hello world"

    def validate(self, payload: Any, where: str) -> None:
        """Per-payload checks beyond the size limits (raise limits.RequestError)."""


@contextlib.contextmanager
def _autocast(device: torch.device, bf16: bool) -> Any:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        yield


# --------------------------------------------------------------------------------------- task heads
@dataclass
class TaskHandler(Handler):
    session: Any = None
    bf16: bool = False
    before: Any = None  # called before each forward (switches the shared encoder's adapter)

    @property
    def kind(self) -> str:
        return self.session.config.kind

    def warm_up_payload(self) -> Any:
        if self.kind == "qa":
            return {"question": "where?", "context": "hello world"}
        return "hello world"

    def _example(self, payload: Any) -> Any:
        from ..finetuning.examples import Example

        if self.kind == "qa":
            return Example(text=payload["context"], text_pair=payload["question"])
        if self.kind == "tagging":
            return Example(text=payload.split())
        return Example(text=payload)

    @torch.no_grad()
    def run(self, payloads: list[Any]) -> list[Any]:
        session = self.session
        if self.before is not None:
            self.before()
        examples = [self._example(p) for p in payloads]
        predictions, logits = session.predict_examples(examples, bf16=self.bf16)
        if self.kind == "classification":
            names = list(session.labels.names) if session.labels is not None else []
            multi = session.config.head.multi_label
            out = []
            for label, row in zip(predictions, logits, strict=True):
                row = np.asarray(row, dtype=np.float64)
                probs = 1 / (1 + np.exp(-row)) if multi else np.exp(row - row.max()) / np.exp(row - row.max()).sum()
                out.append({"label": label, "probabilities": {n: float(p) for n, p in zip(names, probs, strict=True)}})
            return out
        if self.kind == "tagging":
            return [{"tokens": e.text, "tags": list(tags)} for e, tags in zip(examples, predictions, strict=True)]
        return [{"answer": answer} for answer in predictions]


# --------------------------------------------------------------------------------------- fill-mask
@dataclass
class FillMaskHandler(Handler):
    model: Any = None
    device: torch.device = torch.device("cpu")
    bf16: bool = False
    top_k_limit: int = 50

    def warm_up_payload(self) -> Any:
        return {"text": f"hello {self.tokenizer.mask_token}", "top_k": 1}

    def length(self, payload: Any) -> int:
        return super().length(payload["text"])

    def validate(self, payload: Any, where: str) -> None:
        from .limits import RequestError

        if self.tokenizer.mask_token not in payload["text"]:
            raise RequestError(422, f"'{where}' holds no {self.tokenizer.mask_token} to fill")

    @torch.no_grad()
    def run(self, payloads: list[Any]) -> list[Any]:
        tokenizer, mask_id = self.tokenizer, self.tokenizer.mask_token_id
        limit = min(tokenizer.model_max_length, self.model.config.max_position_embeddings)
        batch = tokenizer([p["text"] for p in payloads], max_length=limit)
        ids = batch["input_ids"].to(self.device)
        at_mask = ids == mask_id
        if not bool(at_mask.any()):
            return [[] for _ in payloads]
        labels = torch.where(at_mask, ids, torch.full_like(ids, -100))
        with _autocast(self.device, self.bf16):
            out = self.model(ids, batch["attention_mask"].to(self.device), labels=labels)
        logits = out.logits if hasattr(out, "logits") else out.prediction_logits
        probs = torch.softmax(logits.float().reshape(int(at_mask.sum()), -1), dim=-1).cpu()
        counts = at_mask.sum(dim=1).tolist()
        results, row = [], 0
        for payload, count in zip(payloads, counts, strict=True):
            k = min(int(payload["top_k"]), probs.shape[-1])
            masks = []
            for r in range(row, row + int(count)):
                values, indices = probs[r].topk(k)
                masks.append([{"token": tokenizer.convert_ids_to_tokens(int(i)), "probability": float(v)}
                              for v, i in zip(values, indices, strict=True)])
            row += int(count)
            results.append(masks)
        return results


# --------------------------------------------------------------------------------------- embeddings
@dataclass
class EmbedHandler(Handler):
    encoder: Any = None  # a SentenceEncoder
    before: Any = None

    def run(self, payloads: list[Any]) -> list[Any]:
        if self.before is not None:
            self.before()
        self.encoder.batch_size = max(len(payloads), 1)
        vectors = self.encoder.encode(list(payloads), bucket=False)
        return [[float(x) for x in row] for row in vectors]


# --------------------------------------------------------------------------------------- the service
@dataclass
class Service:
    """Every handler of the folder: endpoint -> adapter name ("" without adapters) -> handler."""

    folder: str
    handlers: dict[str, dict[str, Handler]]
    backend: str = "torch"

    def describe(self) -> str:
        parts = []
        for endpoint, by_adapter in self.handlers.items():
            names = [n for n in by_adapter if n]
            parts.append(f"/v1/{endpoint}" + (f" (adapters: {', '.join(names)})" if names else ""))
        return ", ".join(parts)

    def warm_up(self) -> None:
        """One forward per handler, so the first user request does not pay for lazy initialisation."""
        for by_adapter in self.handlers.values():
            for handler in by_adapter.values():
                handler.run([handler.warm_up_payload()])

    def run(self, key: tuple[str, str], payloads: list[Any]) -> list[Any]:
        """The batcher's runner: the key is (endpoint, adapter)."""
        endpoint, adapter = key
        return self.handlers[endpoint][adapter].run(payloads)


def _is_finetuned(folder: Path) -> bool:
    return (folder / "task.json").is_file()


def _sentence_encoder(model: Any, tokenizer: Any, device: torch.device, bf16: bool) -> Any:
    from ..inference.sentence_encoder import SentenceEncoder

    encoder = getattr(model, "bert", model)  # a head model's bare encoder
    return SentenceEncoder(encoder, tokenizer, bf16=bf16, device=device)


def _add(handlers: dict[str, dict[str, Handler]], handler: Handler) -> None:
    handlers.setdefault(handler.endpoint, {})[handler.adapter or ""] = handler


def build_service(folder: str, device: str = "cpu", backend: str = "torch", bf16: bool = False,
                  adapters: Sequence[tuple[str, str]] = ()) -> Service:
    """Load `folder` (and `adapters`: (name, folder) pairs) and build its handlers; ConfigError when the
    folder is missing, supports nothing, or asks for what the back end cannot run."""
    from ..assets import model_path
    from ..device import resolve_device

    path = model_path(folder)  # a folder, or an installed model's alias ("minilm")
    if not path.is_dir():
        raise ConfigError(f"{folder}: no such model folder")
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend must be torch or onnx, got {backend!r}")
    if backend == "onnx" and bf16:
        raise ConfigError("--bf16 applies to the torch backend; an ONNX graph runs in float32 (or int8 once quantized)")
    if backend == "onnx" and adapters:
        raise ConfigError("--adapter switches adapters on a torch encoder; use --backend torch")
    if not _is_finetuned(path) and not (path / "config.json").is_file():
        raise ConfigError(f"{folder}: supports nothing to serve: neither a fine-tuned model folder (task.json) nor an "
                          "encoder folder (config.json)")
    target = resolve_device(device)
    handlers: dict[str, dict[str, Handler]] = {}
    if adapters:
        _adapter_handlers(path, adapters, target, bf16, handlers)
    elif _is_finetuned(path):
        _finetuned_handlers(path, target, backend, bf16, handlers)
    else:
        _encoder_handlers(path, target, backend, bf16, handlers)
    if not handlers:
        raise ConfigError(f"{folder}: supports nothing to serve on the {backend} backend")
    return Service(str(folder), handlers, backend)


def _finetuned_handlers(path: Path, device: torch.device, backend: str, bf16: bool,
                        handlers: dict[str, dict[str, Handler]]) -> None:
    from ..finetuning.session import load_for_inference

    session = load_for_inference(path, device=str(device), backend=backend)
    endpoint = TASK_ENDPOINTS.get(session.config.kind)
    if endpoint is None:
        logger.warning("%s: a %s head has no endpoint; serving embeddings only", path, session.config.kind)
    else:
        _add(handlers, TaskHandler(endpoint, session.tokenizer, session=session, bf16=bf16))
    if backend == "torch":
        _add(handlers, EmbedHandler("embed", session.tokenizer,
                                    encoder=_sentence_encoder(session.model.encoder, session.tokenizer, device, bf16)))


def _encoder_handlers(path: Path, device: torch.device, backend: str, bf16: bool,
                      handlers: dict[str, dict[str, Handler]]) -> None:
    from ..models import load
    from ..runs.probe import load_folder_tokenizer

    tokenizer = load_folder_tokenizer(str(path))
    if backend == "onnx":
        if _names_masked_lm(path):
            raise ConfigError(f"{path}: fill-mask cannot run on the onnx backend (exports hold the bare encoder); "
                              "serve it with --backend torch")
        from ..inference.onnx_runtime import onnx_sentence_encoder

        encoder = onnx_sentence_encoder(path, device="cpu")
        _add(handlers, EmbedHandler("embed", encoder.tokenizer, encoder=encoder))
        return
    model = load(path).eval().to(device)
    if hasattr(model, "mlm_head"):
        _add(handlers, FillMaskHandler("fill-mask", tokenizer, model=model, device=device, bf16=bf16))
    _add(handlers, EmbedHandler("embed", tokenizer, encoder=_sentence_encoder(model, tokenizer, device, bf16)))


def _names_masked_lm(path: Path) -> bool:
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = raw.get("architectures") or [] if isinstance(raw, dict) else []
    return any("MaskedLM" in n or "PreTraining" in n for n in names)


def _adapter_handlers(base: Path, adapters: Sequence[tuple[str, str]], device: torch.device, bf16: bool,
                      handlers: dict[str, dict[str, Handler]]) -> None:
    """One shared encoder (the base folder's), every adapter loaded onto it under its serving name, and per
    adapter a TaskModel over that encoder with the folder's own heads."""
    from ..finetuning.labels import LabelSet
    from ..finetuning.model import TaskModel, tokenizer_folder
    from ..finetuning.peft import load_adapter, set_active_adapter
    from ..finetuning.session import Session
    from ..finetuning.taskdata import TaskConfig
    from ..models import load
    from ..runs.probe import load_folder_tokenizer
    from ..tokenization import load_tokenizer

    if _is_finetuned(base):
        raise ConfigError(f"{base}: --adapter needs the base encoder folder (config.json) the adapters were trained "
                          "on, not a fine-tuned folder")
    encoder = load(base).eval()
    seen: set[str] = set()
    for name, folder in adapters:
        if name in seen:
            raise ConfigError(f"--adapter {name}={folder}: the name {name!r} is given twice")
        seen.add(name)
        path = Path(folder)
        subs = sorted(p for p in (path / "adapters").iterdir() if p.is_dir()) if (path / "adapters").is_dir() else []
        if not _is_finetuned(path) or len(subs) != 1:
            raise ConfigError(f"--adapter {name}={folder}: expected a folder fine-tuned with method adapter or lora "
                              "(task.json and one adapter under adapters/)")
        saved = TaskModel.from_pretrained(path)  # its heads and options (its own encoder copy is dropped)
        load_adapter(encoder, subs[0], name)
        model = TaskModel(encoder, saved.head_configs)
        model.heads.load_state_dict(saved.heads.state_dict())
        model.task_options, model.base_path = saved.task_options, str(base)
        model.eval()
        task = model.default_task
        head = model.head_configs[task]
        endpoint = TASK_ENDPOINTS.get(head.kind)
        if endpoint is None:
            raise ConfigError(f"--adapter {name}={folder}: a {head.kind} head has no endpoint; serve classification, "
                              "tagging or qa heads")
        config = TaskConfig.from_saved(head.kind, head, model.task_options.get(task, {}))
        tokenizer = load_tokenizer(tokenizer_folder(path, saved.base_path))
        session = Session(model, tokenizer, task, config, LabelSet(head.labels) if head.labels else None)
        _add(handlers, TaskHandler(endpoint, tokenizer, adapter=name, session=session, bf16=bf16,
                                   before=lambda name=name: set_active_adapter(encoder, name)))
        del saved
    encoder.to(device)
    for by_adapter in handlers.values():
        for handler in by_adapter.values():
            handler.session.model.to(device)
    tokenizer = load_folder_tokenizer(str(base))
    _add(handlers, EmbedHandler("embed", tokenizer, encoder=_sentence_encoder(encoder, tokenizer, device, bf16),
                                before=lambda: set_active_adapter(encoder, None)))
