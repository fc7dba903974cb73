"""`bertology attention`: what every head attends to, over a text file, into a report.

Per head (`analysis/attention.py`): entropy and the share of attention to [CLS], [SEP], punctuation, the
previous and next token and the token itself, averaged over the real tokens of up to N sentences (one per
line); heads grouped by behaviour (k-means on those statistics, as Clark et al. 2019); heatmaps of one head
from each group on the first sentence. Writes report.md, results.json and heads.png.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis.attention import attention_heatmaps, collect, group_heads
from ..errors import DataError
from ..utils.io import atomic_write
from .probe import load_encoder, load_folder_tokenizer


@dataclass
class AttentionRun:
    model: str
    data: str
    out: str
    sentences: int = 500
    groups: int = 5
    max_length: int = 128
    batch_size: int = 32
    seed: int = 0


def read_lines(path: str, limit: int) -> list[str]:
    """Up to `limit` non-empty lines of a text file, stripped."""
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                texts.append(line.strip())
            if len(texts) >= limit:
                break
    if not texts:
        raise DataError(f"{path}: no text lines")
    return texts


def attention(run: AttentionRun) -> dict[str, Any]:
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder, tokenizer = load_encoder(run.model), load_folder_tokenizer(run.model)
    texts = read_lines(run.data, run.sentences)
    limit = min(run.max_length, encoder.config.max_position_embeddings)
    batches = [tokenizer(texts[i:i + run.batch_size], max_length=limit)
               for i in range(0, len(texts), run.batch_size)]
    stats = collect(encoder, batches, tokenizer)
    groups = group_heads(stats, k=min(run.groups, stats.values.shape[0] * stats.values.shape[1]), seed=run.seed)
    first = tokenizer(texts[0], max_length=limit)
    with torch.no_grad():
        maps = encoder(first["input_ids"], first["attention_mask"], output_attentions=True).attentions
    tokens = [tokenizer.convert_ids_to_tokens(int(i)) for i in first["input_ids"][0]]
    chosen = [cluster.heads[0] for cluster in groups.clusters if cluster.heads][:8]
    failed = attention_heatmaps([m[0] for m in maps], tokens, chosen, out / "heads.png",
                                title=f"one head per group: {texts[0][:60]}")
    summary = {"model": run.model, "data": run.data, "sentences": len(texts), "tokens": stats.tokens,
               "statistics": stats.to_dict(), "groups": groups.to_dict(), "heatmap_heads": chosen}
    with atomic_write(out / "results.json") as handle:
        json.dump(summary, handle, indent=2)
    lines = [f"# Attention of {run.model}", "",
             f"{len(texts)} sentences of {run.data} ({stats.tokens} real tokens, up to {limit} tokens each). Entropy "
             f"in nats (uniform attention would score {stats.uniform_entropy:.2f}); the other columns are shares of "
             "each head's attention, averaged over real query tokens.", "", stats.table(markdown=True), "",
             "## Heads grouped by behaviour", "", groups.table(markdown=True), ""]
    if failed is None:
        lines += ["## One head of each group, first sentence", "", "![heads](heads.png)", ""]
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(lines))
    print(groups.table())
    return summary


__all__ = ["AttentionRun", "attention", "read_lines"]
