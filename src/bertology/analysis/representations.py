"""Frozen word representations of every layer, computed once: the input of every probe.

Words come pre-split (a treebank's or a tagged corpus's words, not the tokenizer's): each word is tokenized
alone, so a word maps to a known span of pieces whatever the tokenizer's own pre-splitting does, and is
represented by its first piece or by the mean of its pieces. Layer 0 is the embedding output. Results are
held as one (words, hidden) tensor per layer plus sentence offsets, and can be saved to and loaded from a
safetensors file, so a probe sweep over layers and settings runs the encoder once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ConfigError, DataError
from ..utils.io import atomic_path

POOLINGS = ("first", "mean")


@dataclass
class WordRepresentations:
    """`layers[l]`: (total words, hidden) for layer l (0 = embeddings); sentence s's words are rows
    `offsets[s]:offsets[s + 1]`. `kept[s]`: how many of sentence s's words fit in the model's length."""

    layers: list[torch.Tensor]
    offsets: list[int]
    kept: list[int]
    pooling: str

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def sentence(self, layer: int, index: int) -> torch.Tensor:
        return self.layers[layer][self.offsets[index]:self.offsets[index + 1]]

    def layer(self, index: int) -> torch.Tensor:
        """Layer `index`'s rows, with a clear error for a layer the model does not have."""
        if not -self.num_layers <= index < self.num_layers:
            raise ConfigError(f"layer {index} does not exist: the representations hold layers 0..{self.num_layers - 1} "
                              "(0 = embeddings)")
        return self.layers[index]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"layer.{i}": t.contiguous() for i, t in enumerate(self.layers)}
        meta = {"offsets": json.dumps(self.offsets), "kept": json.dumps(self.kept), "pooling": self.pooling}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordRepresentations:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
        count = len([k for k in tensors if k.startswith("layer.")])
        return cls([tensors[f"layer.{i}"] for i in range(count)], json.loads(meta["offsets"]),
                   json.loads(meta["kept"]), meta.get("pooling", "first"))


def _pieces(tokenizer, word: str, first: bool) -> list[int]:
    backend = tokenizer.backend
    text = word if first or type(tokenizer).__name__ == "WordPieceTokenizer" else " " + word  # BPE: a space before
    return backend.encode(text, add_special_tokens=False).ids


@torch.no_grad()
def word_representations(encoder: nn.Module, tokenizer, sentences: Sequence[Sequence[str]], pooling: str = "first",
                         batch_size: int = 32, max_length: int | None = None, progress: bool = False
                         ) -> WordRepresentations:
    """Every layer's representation of every word of `sentences` (lists of words), by `pooling` of its
    pieces. A sentence longer than the model's positions keeps its first words (`kept` says how many)."""
    from tqdm.auto import tqdm

    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r}: expected one of {POOLINGS}")
    limit = min(max_length or 512, getattr(encoder.config, "max_position_embeddings", 512))
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    rows: list[tuple[list[int], list[tuple[int, int]]]] = []
    for index, words in enumerate(sentences):
        ids, spans = [cls], []
        for position, word in enumerate(words):
            pieces = _pieces(tokenizer, word, position == 0) or [tokenizer.unk_token_id]
            if len(ids) + len(pieces) + 1 > limit:
                break
            spans.append((len(ids), len(ids) + len(pieces)))
            ids.extend(pieces)
        if not spans and words:
            raise DataError(f"sentence {index}: its first word does not fit in {limit} positions")
        rows.append((ids + [sep], spans))
    was_training = encoder.training
    encoder.eval()
    per_layer: list[list[torch.Tensor]] | None = None
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # length-bucketed batches
    results: dict[int, list[torch.Tensor]] = {}
    device = next(encoder.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="representations", unit="batch"):
        chunk = order[start:start + batch_size]
        width = max(len(rows[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, :len(rows[i][0])] = torch.tensor(rows[i][0])
            mask[row, :len(rows[i][0])] = 1
        out = encoder(ids.to(device), mask.to(device), output_hidden_states=True)
        for row, i in enumerate(chunk):
            spans = rows[i][1]
            words = []
            for layer in out.hidden_states:
                h = layer[row].float().cpu()
                if pooling == "first":
                    words.append(h[[a for a, _ in spans]] if spans else h[:0])
                else:
                    words.append(torch.stack([h[a:b].mean(0) for a, b in spans]) if spans else h[:0])
            results[i] = words
    encoder.train(was_training)
    count = len(next(iter(results.values()))) if results else 0
    per_layer = [[results[i][layer] for i in range(len(rows))] for layer in range(count)]
    offsets = [0]
    for _, spans in rows:
        offsets.append(offsets[-1] + len(spans))
    return WordRepresentations([torch.cat(layer) for layer in per_layer], offsets,
                               [len(spans) for _, spans in rows], pooling)


__all__ = ["POOLINGS", "WordRepresentations", "word_representations"]
