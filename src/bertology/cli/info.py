"""`bertology info`: parameters per component, size on disk and FLOPs per token of a model or preset."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..utils.table import print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="parameters, size on disk and FLOPs per token of a model",
                       description="Describe a model folder or a named preset (e.g. mini, base, bert-L4-H256).")
    p.add_argument("model", help="model folder, or a preset name")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length for the FLOPs count")
    p.set_defaults(run=run)


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.1f}{suffix}{unit}" if suffix else f"{n:.0f}{unit}"
        n /= 1000
    return f"{n:.1f}P{unit}"


def run(args: argparse.Namespace) -> int:
    from ..models import load
    from ..models.bert import BertModel
    from ..models.config import BertConfig
    from ..models.summary import forward_flops_per_token, parameters_by_component

    folder = Path(args.model)
    if folder.is_dir():
        model = load(folder)
        weights = [p for p in folder.iterdir() if p.suffix in {".safetensors", ".bin"}]
        disk = sum(p.stat().st_size for p in weights)
        title = f"{folder} ({type(model).__name__})"
    else:
        model = BertModel(BertConfig.preset(args.model))
        disk = None
        title = f"preset {args.model}"
    config = model.config
    groups = parameters_by_component(model)
    total = sum(groups.values())
    rows = [[name, f"{count:,}", f"{100 * count / total:.1f}%"] for name, count in groups.items()]
    rows.append(["total", f"{total:,}", "100.0%"])
    print(title)
    print(f"layers {config.num_hidden_layers}, hidden {config.hidden_size}, heads {config.num_attention_heads}, "
          f"intermediate {config.intermediate_size}, vocab {config.vocab_size}, "
          f"positions {config.max_position_embeddings}")
    if config.pruned_heads or config.intermediate_sizes:  # a pruned model: its layers differ
        layers = range(config.num_hidden_layers)
        print(f"pruned: heads per layer {[len(config.heads_of(i)) for i in layers]}, feed-forward per layer "
              f"{[config.intermediate_size_of(i) for i in layers]}")
    print_table(["component", "parameters", "share"], rows)
    fp32 = total * 4
    print(f"size: {_human(fp32, 'B')} as fp32 in memory"
          + (f", {_human(disk, 'B')} on disk" if disk is not None else ""))
    flops = forward_flops_per_token(config, args.seq_len)
    print(f"forward FLOPs per token at sequence length {args.seq_len}: {_human(flops)} "
          f"(training step ~3x: {_human(3 * flops)})")
    return 0
