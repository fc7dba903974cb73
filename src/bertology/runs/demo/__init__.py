"""`bertology demo`: the whole life of an encoder on real data, offline, on a laptop CPU.

Chinese: train a WordPiece vocabulary, pretrain a small BERT with whole-word masking on People's Daily,
fine-tune it on review sentiment beside the same model from random weights and a TF-IDF baseline, distil it
into a smaller student, quantize the student to int8, time every variant, probe the layers for part of
speech and draw attention heads. English: fine-tune the real MiniLM (full and LoRA) on WordNet glosses. One
report with plots; every stage is skipped when its result exists and resumes when interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...utils.typed import suggest
from . import chinese, english
from .plan import DEFAULT, QUICK, DemoPlan
from .report import print_summary, write
from .stages import DemoContext, Stage, load_finished, run_stage

STAGES = [
    Stage("data", "data: People's Daily, a WordPiece vocabulary, the jieba-marked corpus, review sentiment", chinese.data),
    Stage("pretrain", "pretraining a small Chinese BERT with whole-word masking", chinese.pretrain),
    Stage("finetune", "fine-tuning on review sentiment: pretrained against random initialisation", chinese.finetune),
    Stage("baseline", "baseline: character n-gram TF-IDF + logistic regression", chinese.baseline),
    Stage("distill", "distilling the fine-tuned model into a smaller student (TinyBERT)", chinese.distill),
    Stage("quantize", "quantizing the student to int8", chinese.quantize),
    Stage("measure", "accuracy against latency for every variant", chinese.measure),
    Stage("probe", "probing each layer for part of speech", chinese.probe),
    Stage("attention", "attention heads", chinese.attention),
    Stage("english", "English: the real MiniLM fine-tuned on WordNet glosses (full and LoRA)", english.english),
]


def select(names: str | None) -> list[Stage]:
    """The stages named (comma-separated, in the demo's order), or all."""
    if not names:
        return list(STAGES)
    known = {stage.name: stage for stage in STAGES}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    for name in wanted:
        if name not in known:
            raise ConfigError(f"--stages: unknown stage {name!r}{suggest(name, known)}; stages are "
                              f"{', '.join(known)}")
    return [stage for stage in STAGES if stage.name in wanted]


def run_demo(out: Path, quick: bool = False, stages: str | None = None, plan: DemoPlan | None = None) -> dict[str, Any]:
    """Run the chosen stages into `out`; returns every stage result there is (run now or earlier)."""
    ctx = DemoContext(out=Path(out), plan=plan or (QUICK if quick else DEFAULT), quick=quick)
    chosen = select(stages)
    load_finished(ctx, STAGES)
    for stage in chosen:
        run_stage(ctx, stage)
    report = write(ctx)
    print_summary(ctx, report)
    return ctx.results


__all__ = ["STAGES", "run_demo", "select"]
