"""The compression report shared by `bertology distill`, `quantize`, `prune` and `export`.

Every compression command answers the same question: what did we give up (task metric) for what we got
(parameters, bytes on disk, latency, throughput)? So every variant (the teacher or original, and each
compressed model) is measured the same way (`VariantMeasure`, `measure_variant`, `measure_speed`) and
written the same way (`CompressionReport.write`: report.md, results.json, metric_vs_speed.png).

Conventions, fixed here so that reports of different commands compare:
- parameters count every weight once (embeddings included; a tied decoder is the embedding table);
- sizes are bytes on disk, shown as MB = 10^6 bytes;
- latency is the median milliseconds of one call at batch 1; throughput the median tokens/s at batch 32;
  both at the variant's sequence length (128 by default), with the threads torch already uses;
- speed-up is throughput over the reference's throughput; metric share is metric over the reference's
  metric (same metric name only).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..utils.io import atomic_write, translate_os_errors
from ..utils.plot import pyplot, save_png
from ..utils.table import format_table

logger = logging.getLogger("bertology")

REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"
PLOT_FILE = "metric_vs_speed.png"
#: bumped when results.json changes shape, so readers can refuse what they do not know
RESULTS_FORMAT = 1

DEFAULT_SEQ = 128
THROUGHPUT_BATCH = 32

_MISSING = "-"


# ------------------------------------------------------------------------------------------ counting
def _storage_key(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...]]:
    """Same key for two tensors that are one tensor (tied weights), whatever their Parameter objects."""
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))


def _packed_weights(module: nn.Module) -> Iterator[torch.Tensor]:
    """Weights kept outside `parameters()`: quantized modules (dynamic Linear, ...) hold them packed and
    give them through `weight()` / `bias()` methods."""
    for sub in module.modules():
        for name in ("weight", "bias"):
            accessor = getattr(type(sub), name, None)
            if callable(accessor) and not isinstance(accessor, property):
                try:
                    value = getattr(sub, name)()
                except (RuntimeError, TypeError):
                    continue
                if isinstance(value, torch.Tensor):
                    yield value


def count_parameters(module: nn.Module, nonzero_only: bool = False) -> int:
    """Weights in `module`, embeddings included, each tensor counted once however often it is tied.

    `parameters()` already merges one Parameter registered twice; the storage key also merges distinct
    Parameter objects over one tensor, and quantized modules' packed weights are counted too (they are not
    parameters). With `nonzero_only`, only non-zero entries count (a pruned model after `prune.remove`).
    """
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    total = 0
    tensors = list(module.parameters()) + list(_packed_weights(module))
    for tensor in tensors:
        key = _storage_key(tensor)
        if key in seen:
            continue
        seen.add(key)
        if nonzero_only:
            plain = tensor.dequantize() if tensor.is_quantized else tensor
            total += int(torch.count_nonzero(plain.detach()))
        else:
            total += tensor.numel()
    return total


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes of every file under a saved model folder (weights, config, tokenizer), subfolders included.

    A link to a file counts as the file it points to (Hugging Face cache folders are links to blobs)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder, cannot measure a saved model's size")
    total = 0
    with translate_os_errors(root, "measure"):
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath, name)
                if path.is_file():
                    total += path.stat().st_size
    return total


def _plain_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A state dict as safetensors can store it: quantized tensors as integers plus their scales, packed
    tuples flattened, non-tensors (dtypes) dropped, tied tensors stored once."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()

    def add(name: str, value: Any) -> None:
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                add(f"{name}.{i}", item)
            return
        if not isinstance(value, torch.Tensor):
            return
        if not value.is_quantized:
            key = _storage_key(value)
            if key in seen:
                return
            seen.add(key)
            out[name] = value.detach().to("cpu").contiguous().clone()
            return
        out[name] = value.int_repr().contiguous().clone()
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            out[name + ".scale"] = torch.tensor([value.q_scale()], dtype=torch.float64)
            out[name + ".zero_point"] = torch.tensor([value.q_zero_point()], dtype=torch.int64)
        else:
            out[name + ".scale"] = value.q_per_channel_scales().contiguous().clone()
            out[name + ".zero_point"] = value.q_per_channel_zero_points().contiguous().clone()

    for name, value in state.items():
        add(name, value)
    return out


def module_size_on_disk(module: nn.Module) -> int:
    """Bytes of `module`'s state dict saved with safetensors in a temporary folder: the size a model has
    before it has a folder of its own (measured, not estimated, so header and alignment count)."""
    from safetensors.torch import save_file

    tensors = _plain_tensors(module.state_dict())
    with tempfile.TemporaryDirectory(prefix="bertology-size-") as folder:
        path = Path(folder) / "model.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        return path.stat().st_size


# -------------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class SpeedMeasure:
    """Medians of timed calls on one (batch, seq) shape."""

    latency_ms: float  #: median milliseconds per call
    tokens_per_s: float  #: batch * seq / median seconds
    batch: int
    seq: int
    repeats: int
    threads: int


def _owner_module(model_call: Callable[..., Any]) -> nn.Module | None:
    if isinstance(model_call, nn.Module):
        return model_call
    owner = getattr(model_call, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def measure_speed(
    model_call: Callable[[torch.Tensor], Any],
    batch: int = 1,
    seq: int = DEFAULT_SEQ,
    vocab_size: int = 30522,
    repeats: int = 10,
    warmup: int = 2,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SpeedMeasure:
    """Time `model_call(input_ids)` on random ids of shape (batch, seq): medians over `repeats` calls after
    `warmup` untimed ones, under `torch.no_grad()`.

    The callable gets int64 ids only, so anything can be timed the same way: a module, a lambda adding an
    attention mask or an autocast, or an onnxruntime session
    (`lambda ids: session.run(None, {"input_ids": ids.numpy()})`). A module (or a bound method of one) is
    put in eval mode for the measure and given back its mode after. Threads are not changed: set them with
    `torch.set_num_threads` first, so that every variant of a report runs under the same ones. Medians,
    not means, since one slow call (a page fault, another process) should not move the result.
    """
    if batch < 1 or seq < 1 or vocab_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"measure_speed: need batch, seq, vocab_size, repeats >= 1 and warmup >= 0; got "
                         f"batch={batch}, seq={seq}, vocab_size={vocab_size}, repeats={repeats}, warmup={warmup}")
    generator = torch.Generator().manual_seed(seed)
    low = 1 if vocab_size > 1 else 0  # id 0 is padding in every vocabulary we ship
    ids = torch.randint(low, vocab_size, (batch, seq), generator=generator).to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    owner = _owner_module(model_call)
    was_training = owner.training if owner is not None else False
    if owner is not None:
        owner.eval()
    times: list[float] = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model_call(ids)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                model_call(ids)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        if owner is not None:
            owner.train(was_training)
    median = statistics.median(times)
    return SpeedMeasure(latency_ms=median * 1e3, tokens_per_s=batch * seq / median if median > 0 else float("inf"),
                        batch=batch, seq=seq, repeats=repeats, threads=torch.get_num_threads())


# ------------------------------------------------------------------------------------------ variants
@dataclass
class VariantMeasure:
    """What one model variant costs and scores. Speed and metric are None when not measured."""

    name: str
    parameters: int
    size_bytes: int | None = None
    latency_ms: float | None = None  #: median ms of one call at batch 1, `seq_len` tokens
    tokens_per_s: float | None = None  #: median tokens/s at `throughput_batch` x `seq_len`
    metric_name: str | None = None
    metric: float | None = None
    seq_len: int = DEFAULT_SEQ
    throughput_batch: int = THROUGHPUT_BATCH
    threads: int | None = None  #: torch threads the speed was measured with
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantMeasure:
        """Read back `to_dict`'s output; derived keys a report adds (speed-up, share) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def measure_variant(
    name: str,
    model: nn.Module,
    *,
    vocab_size: int,
    folder: str | os.PathLike | None = None,
    metric_name: str | None = None,
    metric: float | None = None,
    time_speed: bool = True,
    model_call: Callable[[torch.Tensor], Any] | None = None,
    seq: int = DEFAULT_SEQ,
    throughput_batch: int = THROUGHPUT_BATCH,
    repeats: int = 5,
    warmup: int = 1,
    nonzero_only: bool = False,
    notes: str = "",
) -> VariantMeasure:
    """Measure one variant the report's way: parameters; size of `folder` if it was saved, else of its state
    dict saved to a temporary folder; latency at batch 1 and throughput at `throughput_batch` x `seq` through
    `model_call` (default: the model itself) unless `time_speed` is False."""
    latency = throughput = None
    threads = None
    if time_speed:
        call = model_call if model_call is not None else model
        one = measure_speed(call, 1, seq, vocab_size, repeats, warmup)
        many = measure_speed(call, throughput_batch, seq, vocab_size, repeats, warmup)
        latency, throughput, threads = one.latency_ms, many.tokens_per_s, many.threads
    return VariantMeasure(
        name=name,
        parameters=count_parameters(model, nonzero_only=nonzero_only),
        size_bytes=folder_size(folder) if folder is not None else module_size_on_disk(model),
        latency_ms=latency, tokens_per_s=throughput, metric_name=metric_name, metric=metric,
        seq_len=seq, throughput_batch=throughput_batch, threads=threads, notes=notes,
    )


# -------------------------------------------------------------------------------------------- report
def _environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "machine": platform.machine()}


def _millions(n: int) -> str:
    m = n / 1e6
    return f"{m:,.2f}" if m >= 1 else f"{m:.3g}"


def _megabytes(n: int | None) -> str:
    if n is None:
        return _MISSING
    mb = n / 1e6
    return f"{mb:,.1f}" if mb >= 1 else f"{mb:.3g}"


@dataclass
class CompressionReport:
    """Variants measured the same way, compared with one of them (`reference`: the teacher or original)."""

    reference: str
    variants: list[VariantMeasure] = field(default_factory=list)
    title: str = "Compression report"
    environment: dict[str, Any] = field(default_factory=_environment)

    # --------------------------------------------------------------------------------- building
    def add(self, variant: VariantMeasure) -> VariantMeasure:
        """Append a variant; names are the table's keys, so a second one of a name is refused."""
        if any(v.name == variant.name for v in self.variants):
            raise ConfigError(f"compression report: variant {variant.name!r} is already in the report")
        self.variants.append(variant)
        return variant

    def variant(self, name: str) -> VariantMeasure:
        for v in self.variants:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.variants) or "none"
        raise ConfigError(f"compression report: no variant {name!r} (variants: {known})")

    @property
    def reference_variant(self) -> VariantMeasure:
        return self.variant(self.reference)

    # ------------------------------------------------------------------------------- comparisons
    def speedup(self, variant: VariantMeasure) -> float | None:
        """Throughput over the reference's (None when either was not timed)."""
        ref = self.reference_variant
        if variant.tokens_per_s is None or not ref.tokens_per_s:
            return None
        return variant.tokens_per_s / ref.tokens_per_s

    def metric_share(self, variant: VariantMeasure) -> float | None:
        """Metric over the reference's, when both have a value for the same metric (else None)."""
        ref = self.reference_variant
        if variant.metric is None or ref.metric is None or not ref.metric:
            return None
        if variant.metric_name != ref.metric_name:
            return None
        return variant.metric / ref.metric

    # ---------------------------------------------------------------------------------- rendering
    def _table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows; columns nobody measured (speed, metric) are left out rather than all dashes."""
        self.reference_variant  # noqa: B018 - fail early, naming the variants, if the reference is absent
        timed = any(v.latency_ms is not None or v.tokens_per_s is not None for v in self.variants)
        scored = any(v.metric is not None for v in self.variants)
        ref = self.reference_variant
        header = ["variant", "parameters (M)", "size (MB)"]
        if timed:
            header += ["latency b1 (ms)", f"tokens/s b{ref.throughput_batch}x{ref.seq_len}",
                       f"speed-up vs {self.reference}"]
        if scored:
            metric_names = sorted({v.metric_name for v in self.variants if v.metric is not None and v.metric_name})
            header += [" / ".join(metric_names) if metric_names else "metric", "share of reference"]
        rows = []
        for v in self.variants:
            row = [v.name + (" (reference)" if v.name == self.reference else ""), _millions(v.parameters),
                   _megabytes(v.size_bytes)]
            if timed:
                speedup = self.speedup(v)
                row += [_MISSING if v.latency_ms is None else f"{v.latency_ms:.2f}",
                        _MISSING if v.tokens_per_s is None else f"{v.tokens_per_s:,.0f}",
                        _MISSING if speedup is None else f"{speedup:.2f}x"]
            if scored:
                share = self.metric_share(v)
                row += [_MISSING if v.metric is None else f"{v.metric:.4g}",
                        _MISSING if share is None else f"{100 * share:.1f}%"]
            rows.append(row)
        return header, rows

    def render_terminal(self) -> str:
        """The table as aligned plain text, for the console at the end of a command."""
        header, rows = self._table()
        return format_table(header, rows)

    def _footnotes(self) -> list[str]:
        ref = self.reference_variant
        notes = []
        shapes = {(v.throughput_batch, v.seq_len) for v in self.variants if v.tokens_per_s is not None}
        if len(shapes) > 1:
            notes.append("Warning: variants were timed at different shapes "
                         + ", ".join(f"{b}x{s}" for b, s in sorted(shapes)) + "; speed-ups do not compare.")
        threads = {v.threads for v in self.variants if v.threads is not None}
        if len(threads) > 1:
            notes.append(f"Warning: variants were timed with different thread counts {sorted(threads)}.")
        names = {v.metric_name for v in self.variants if v.metric is not None}
        if len(names) > 1:
            notes.append(f"Metric share is given only for variants scored with {ref.metric_name!r}, "
                         f"the reference's metric.")
        for v in self.variants:
            if v.notes:
                notes.append(f"{v.name}: {v.notes}")
        return notes

    def render_markdown(self, plot: str | None = None) -> str:
        """report.md: the table, how it was measured, and the plot (`plot` is a file name beside it, or a
        line saying why there is none)."""
        header, rows = self._table()
        env, ref = self.environment, self.reference_variant
        lines = [f"# {self.title}", "",
                 f"Reference: **{self.reference}**. torch {env.get('torch', '?')}, {env.get('threads', '?')} "
                 f"threads, {env.get('machine', '?')}. Latency: median ms of one call at batch 1; throughput: "
                 f"median tokens/s at batch {ref.throughput_batch} x {ref.seq_len}; speed-up is throughput "
                 f"over the reference's; share is the metric over the reference's. MB = 10^6 bytes.",
                 "", format_table(header, rows, markdown=True), ""]
        lines += [f"- {note}" for note in self._footnotes()]
        if self._footnotes():
            lines.append("")
        if plot is not None:
            lines += [f"![metric against throughput]({plot})" if plot.endswith(".png") else plot, ""]
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """results.json: every measured field, plus the derived speed-up and share for readers' convenience."""
        variants = []
        for v in self.variants:
            data = v.to_dict()
            data["speedup"] = self.speedup(v)
            data["metric_share"] = self.metric_share(v)
            variants.append(data)
        return {"format": RESULTS_FORMAT, "title": self.title, "reference": self.reference,
                "environment": dict(self.environment), "variants": variants}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionReport:
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"compression results: expected format {RESULTS_FORMAT}, found {found!r}")
        return cls(reference=data["reference"], title=data.get("title", "Compression report"),
                   environment=dict(data.get("environment", {})),
                   variants=[VariantMeasure.from_dict(v) for v in data.get("variants", [])])

    @classmethod
    def read(cls, folder_or_file: str | os.PathLike) -> CompressionReport:
        """A report from a run folder's results.json (or the file itself)."""
        path = Path(folder_or_file)
        if path.is_dir():
            path = path / RESULTS_FILE
        with translate_os_errors(path, "read"):
            text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    # ---------------------------------------------------------------------------------- writing
    def plot(self, out: str | os.PathLike) -> str | None:
        """metric_vs_speed.png: metric against throughput (log x), one labelled point per variant.

        Returns None when written, else the reason there is no plot (matplotlib missing, nothing to plot),
        so a report explains the missing picture instead of failing the command that made it."""
        points = [v for v in self.variants if v.metric is not None and v.tokens_per_s]
        if not points:
            return "No plot: no variant has both a metric and a measured throughput."
        plt = pyplot("plot")
        if plt is None:
            return "Warning: matplotlib is not installed (pip install 'bertology[plot]'); no plot written."
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for v in points:
            is_ref = v.name == self.reference
            ax.scatter([v.tokens_per_s], [v.metric], s=60 if is_ref else 40, marker="*" if is_ref else "o",
                       color="tab:red" if is_ref else "tab:blue", zorder=3)
            ax.annotate(v.name, (v.tokens_per_s, v.metric), textcoords="offset points", xytext=(6, 4),
                        fontsize=9)
        ax.set_xscale("log")
        ref = self.reference_variant
        ax.set_xlabel(f"tokens/s, batch {ref.throughput_batch} x {ref.seq_len} (log scale)")
        names = sorted({v.metric_name for v in points if v.metric_name})
        ax.set_ylabel(" / ".join(names) if names else "metric")
        ax.set_title(self.title)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        save_png(fig, out, dpi=110)
        return None

    def write(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write report.md, results.json and (when possible) metric_vs_speed.png into a run folder, each
        atomically, so an interrupted command never leaves half a report. Returns the paths written."""
        self.reference_variant  # noqa: B018 - refuse before writing anything
        folder = Path(folder)
        with translate_os_errors(folder, "create the report folder"):
            folder.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        why_not = self.plot(folder / PLOT_FILE)
        if why_not is None:
            written["plot"] = folder / PLOT_FILE
        with atomic_write(folder / RESULTS_FILE) as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")
        written["results"] = folder / RESULTS_FILE
        with atomic_write(folder / REPORT_FILE) as handle:
            handle.write(self.render_markdown(PLOT_FILE if why_not is None else why_not))
        written["report"] = folder / REPORT_FILE
        return written


__all__ = [
    "DEFAULT_SEQ", "PLOT_FILE", "REPORT_FILE", "RESULTS_FILE", "THROUGHPUT_BATCH", "CompressionReport",
    "SpeedMeasure", "VariantMeasure", "count_parameters", "folder_size", "measure_speed", "measure_variant",
    "module_size_on_disk",
]
