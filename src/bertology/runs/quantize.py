"""`bertology quantize`: a fine-tuned model folder to an int8 one, with the compression report.

The run folder holds model/ (the int8 model, loadable by `evaluate`, `predict` and `bertology.load`),
report.md, results.json and metric_vs_speed.png (original against int8), and for quantization-aware
training the fine-tuning run under qat/. Calibration (static) reads a sample of the task's texts through the
model folder's own task options, as `evaluate` does; quantization-aware training fine-tunes the model
further on its task with Q8BERT's fake quantization (the `qat` regularizer) before the int8 conversion.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..compression.quantization import QUANTIZERS, QuantizeOptions, quantize_encoder
from ..compression.report import CompressionReport, measure_variant
from ..errors import ConfigError
from ..utils.typed import Where, to_plain

logger = logging.getLogger("bertology")


@dataclass
class QATTraining:
    """How quantization-aware training fine-tunes (the model's own task, further)."""

    train: str | None = None
    epochs: int = 2
    learning_rate: float = 2e-5
    batch_size: int = 32
    bits: int = 8
    seed: int = 42


@dataclass
class QuantizeRun:
    model: str
    run_dir: str
    method: str = "dynamic"
    options: QuantizeOptions = field(default_factory=QuantizeOptions)
    #: texts (a task file) the static method calibrates on; default: the QAT/test file
    calibration: str | None = None
    #: a labelled task file: the report scores original and int8 model on it
    test: str | None = None
    qat: QATTraining = field(default_factory=QATTraining)
    #: time speed (latency at batch 1, tokens/s at 32 x 128) in the report
    time_speed: bool = True

    def validate(self) -> None:
        where = Where("quantize")
        entry = QUANTIZERS.entry(self.method, where.child("method"))
        if not (Path(self.model) / "task.json").is_file():
            raise ConfigError(f"{self.model} is not a fine-tuned model folder (no task.json): quantize takes what "
                              "`bertology finetune` or `distill` wrote (its model/ folder)")
        needs = entry.info.get("needs")
        if needs == "calibration" and not (self.calibration or self.test):
            raise ConfigError("the static method calibrates on real texts: give --calibration FILE (a sample of the "
                              "task's data)")
        if needs == "training" and not self.qat.train:
            raise ConfigError("quantization-aware training fine-tunes on the task: give --train FILE")
        for name in ("calibration", "test"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConfigError(f"--{name} {path}: no such file")
        if self.qat.train and not Path(self.qat.train).is_file():
            raise ConfigError(f"--train {self.qat.train}: no such file")


def _run_qat(run: QuantizeRun, session: Any) -> str:
    """Fine-tune the model further under fake quantization; returns the trained model folder."""
    from ..runs.finetune import Finetuning, finetune_config

    task = {"kind": session.config.kind, "train": run.qat.train, "max_length": session.config.max_length,
            "columns": to_plain(session.config.columns)}
    if run.test:
        task["test"] = run.test
    folder = Path(run.run_dir) / "qat"
    config = finetune_config({
        "model": run.model, "run_dir": str(folder), "seed": run.qat.seed, "tasks": {session.name: task},
        "regularizers": {"qat": {"bits": run.qat.bits}},
        "train": {"epochs": run.qat.epochs, "learning_rate": run.qat.learning_rate, "batch_size": run.qat.batch_size,
                  "warmup_ratio": 0.1, "plot": False, "save_every": 0}})
    Finetuning(config).run()
    return str(folder / "model")


def _calibrate(session: Any, path: str, batches: int, batch_size: int = 32):
    """Run the task model over the first `batches` length-bucketed batches of `path`'s texts."""
    task = session.read(path, "calibration", "skip", require_labels=False)
    data = session.batches(task, batch_size, batches, bucket=True)

    def calibrate(_: torch.nn.Module) -> None:
        for batch in data:
            session.model(**batch)

    return calibrate


def quantize(run: QuantizeRun) -> dict[str, Any]:
    """Quantize, save, score and report; returns the summary written to results.json."""
    from ..finetuning.session import load_for_inference

    run.validate()
    out = Path(run.run_dir)
    start = time.perf_counter()
    original = load_for_inference(run.model, device="cpu")
    test = original.read(run.test, "test") if run.test else None
    report = CompressionReport(reference="original", title=f"Quantization report ({run.method})")
    vocab = original.model.encoder.config.vocab_size
    seq = min(128, original.model.encoder.config.max_position_embeddings)  # the report's 32 x 128, if it fits

    def add(name: str, session: Any, folder: Path | None) -> float | None:
        metrics = session.evaluate(test) if test is not None else {}
        key = "accuracy" if "accuracy" in metrics else next(iter(metrics), None)
        metric = metrics.get(key) if key else None
        metric_name = f"test {key}" if key else None  # as `export` and `prune` name it
        encoder = session.model.encoder
        report.add(measure_variant(name, encoder, vocab_size=vocab, folder=folder, metric_name=metric_name,
                                   metric=metric, time_speed=run.time_speed, seq=seq,
                                   model_call=lambda ids: encoder(ids, torch.ones_like(ids)), repeats=3))
        return metric

    # sizes are whole model folders (weights, config, heads, tokenizer), as `export` and `prune` measure them
    base_metric = add("original", original, Path(run.model))
    source = original
    if run.method == "qat":
        source = load_for_inference(_run_qat(run, original), device="cpu")
    calibrate = None
    if run.method == "static":
        calibrate = _calibrate(source, run.calibration or run.test, run.options.calibration_batches)
    layers = quantize_encoder(source.model.encoder, run.method, run.options, calibrate, Where("quantize"))
    model_dir = out / "model"
    source.model.save_pretrained(model_dir)
    source.tokenizer.save_pretrained(model_dir / "tokenizer")
    quantized = load_for_inference(model_dir, device="cpu")  # what users will load, not the object in memory
    metric = add(run.method, quantized, model_dir)
    report.write(out)
    print(report.render_terminal())
    return {"method": run.method, "layers": {k: len(v) for k, v in layers.items()}, "original_metric": base_metric,
            "metric": metric, "seconds": round(time.perf_counter() - start, 1), "model": str(model_dir)}


__all__ = ["QATTraining", "QuantizeRun", "quantize"]
