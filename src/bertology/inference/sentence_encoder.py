"""Texts in, one vector per text out, as fast as the machine allows.

Two levers remove the work padding would waste: texts are sorted by length so each batch holds
similar lengths (bucketing), and the model packs the real tokens of a batch (unpadding). Results are
returned in the caller's order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..device import resolve_device
from ..models.bert import BertModel
from ..models.pooling import pool
from ..tokenization import BaseTokenizer, Tokenizer


class SentenceEncoder:
    def __init__(
        self,
        model: BertModel,
        tokenizer: BaseTokenizer,
        pooling: str = "mean",
        normalize: bool = False,
        batch_size: int = 32,
        max_length: int | None = None,
        bf16: bool = False,
        sort_by_length: bool = True,
        device: str | torch.device = "auto",
    ) -> None:
        """`device`: auto (CUDA when present, else the CPU), cpu, cuda, cuda:N or a torch.device; the model is
        moved there and batches follow it (through pinned memory to a GPU). `sort_by_length` (bucketing, the
        default) batches texts of similar length together; results come back in the caller's order either
        way, so turning it off only costs padding."""
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.batch_size = batch_size
        limit = min(tokenizer.model_max_length, model.config.max_position_embeddings)
        self.max_length = min(max_length or limit, limit)
        self.bf16 = bf16
        self.sort_by_length = sort_by_length

    @classmethod
    def from_pretrained(cls, folder: str, **kwargs) -> SentenceEncoder:
        """A model folder (or a registry alias such as "minilm"); the tokenizer is read first, so a folder
        without one fails before any weights are loaded."""
        from ..assets import model_path

        if not isinstance(kwargs.get("device", "auto"), torch.device):
            resolve_device(kwargs.get("device", "auto"))  # a device that is not present: before any loading
        folder = str(model_path(folder))
        BertModel.config_class.from_pretrained(folder)  # not a model folder: say so before anything else
        tokenizer = Tokenizer.from_pretrained(folder)
        return cls(BertModel.from_pretrained(folder), tokenizer, **kwargs)

    def _batches(self, texts: Sequence[str], bucket: bool) -> Iterator[list[int]]:
        order = list(range(len(texts)))
        if bucket:
            # Token counts cost a tokenizer pass; character length is a good enough proxy for bucketing.
            order.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], progress: bool = False, bucket: bool | None = None) -> np.ndarray:
        """(len(texts), hidden) float32 array of sentence embeddings, in the order of `texts`; `bucket`
        overrides the encoder's `sort_by_length` for this call."""
        bucket = self.sort_by_length if bucket is None else bucket
        texts = list(texts)
        width = self.model.config.hidden_size
        out = np.zeros((len(texts), width), dtype=np.float32)
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext())
        gpu = self.device.type == "cuda"
        bar = tqdm(total=len(texts), unit="text", disable=not progress, desc="embedding")
        for rows in self._batches(texts, bucket):
            batch = self.tokenizer([texts[i] for i in rows], max_length=self.max_length, truncation=True,
                                   padding=True, return_tensors="pt")
            inputs = [batch[k].pin_memory() if gpu else batch[k]
                      for k in ("input_ids", "attention_mask", "token_type_ids")]
            input_ids, mask, types = (t.to(self.device, non_blocking=True) for t in inputs)
            with autocast:
                hidden = self.model(input_ids, mask, types, unpad=True).last_hidden_state
            vectors = pool(hidden.float(), mask, self.pooling, self.normalize)
            out[rows] = vectors.cpu().numpy()
            bar.update(len(rows))
        bar.close()
        return out
