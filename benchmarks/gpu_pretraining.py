"""GPU MLM pretraining speed at the base size: transformers' step, ours, ours compiled, ours through the Trainer.

What: BERT-base (12 layers, hidden 768, 12 heads, ff 3072, vocabulary 30,522), batch 256 x 128, bf16 autocast,
AdamW(fused=True), on real text (English fortunes tokenized with the MiniLM vocabulary, cut into full
128-token sequences, 15% of the real positions labelled by our token masker). Rows, all in one process:
  1. transformers' BertForMaskedLM (attn_implementation="sdpa"): forward, backward, optimizer step on
     pre-built batches (it computes the decoder at every position);
  2. bertology.BertForMaskedLM: the same step on the same batches (logits only at labelled positions);
  3. (2) under torch.compile (--no-compile to leave it out);
  4. bertology's PretrainingModel (what `bertology pretrain` trains) through `Trainer.train()`, batches made
     by PretrainingCollator + masker as the run goes (clipping, schedule and bookkeeping included; compiled
     unless --no-compile).
Each row: seconds per step are the median of --repeats runs of --steps steps after --warmup steps, with
torch.cuda.synchronize around the timing. "run TFLOP/step" is what the row's model computes
(`encoder_training_flops`; transformers' head at every position); MFU counts OUR model's useful FLOPs
(head at labelled positions only) for every row, so all rows are compared on the same work, against the
measured bf16 matmul peak (`matmul_peak_flops`).

Targets on an H200-class GPU: the Trainer row >= 50% MFU and >= 1.8x transformers' step.

Run (needs CUDA; prints one line and exits 0 without it):
    python benchmarks/gpu_pretraining.py [--batch 256] [--seq 128] [--steps 10] [--repeats 3] [--warmup 5]
                                         [--no-compile] [--markdown out.md]
    python benchmarks/gpu_pretraining.py --smoke   # the code paths on CPU at tiny shapes, fp32, compiled with
                                                   # the aot_eager backend (inductor takes minutes on a CPU)
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertForMaskedLM, Tokenizer  # noqa: E402
from bertology.assets import english_fortune_files, minilm_dir, read_fortunes  # noqa: E402
from bertology.data.collate import PretrainingCollator  # noqa: E402
from bertology.data.maskers import MaskingConfig, build_masker  # noqa: E402
from bertology.objectives import PretrainingModel  # noqa: E402
from bertology.training import TrainConfig, Trainer  # noqa: E402
from bertology.training.callbacks import Callback  # noqa: E402
from bertology.training.peak import encoder_training_flops, matmul_peak_flops  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

VOCAB = 30522  # MiniLM's (BERT's uncased) vocabulary
LR = 1e-4
SMOKE = {"layers": 2, "hidden": 64, "heads": 2, "ff": 256, "batch": 4, "seq": 32, "steps": 2, "repeats": 1,
         "warmup": 2, "batches": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--ff", type=int, default=3072)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, allocator)")
    parser.add_argument("--batches", type=int, default=8, help="distinct pre-built batches (and Trainer batches per epoch)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="add the torch.compile row and compile the Trainer's model (default: on)")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--smoke", action="store_true",
                        help="run every code path on the CPU at tiny shapes (2 layers, hidden 64, batch 4 x 32, fp32)")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    args.device = torch.device("cpu" if args.smoke else "cuda")
    args.bf16 = not args.smoke
    # inductor takes minutes to compile on the CPU; aot_eager traces the same graphs (forward and backward)
    args.backend = "aot_eager" if args.smoke else "inductor"
    return args


# ------------------------------------------------------------------------------------------------ data
def sequences(tok: Tokenizer, count: int, seq: int) -> list[np.ndarray]:
    """`count` full-length sequences of real text, [CLS] seq-2 tokens [SEP] (the text repeats if short)."""
    body, stream = seq - 2, []
    while len(stream) < count * body:
        for path in english_fortune_files():
            for entry in read_fortunes(path):
                stream.extend(tok.encode(entry)[1:-1])
                if len(stream) >= count * body:
                    break
            if len(stream) >= count * body:
                break
    return [np.array([tok.cls_token_id, *stream[i * body:(i + 1) * body], tok.sep_token_id], dtype=np.int64)
            for i in range(count)]


def pretraining_examples(tok: Tokenizer, count: int, seq: int) -> list[dict[str, np.ndarray]]:
    """Instances as PretrainingCollator takes them (specials not maskable, every token a word start)."""
    special = [tok.cls_token_id, tok.sep_token_id, tok.pad_token_id]
    return [{"index": i, "input_ids": s, "token_type_ids": np.zeros_like(s), "maskable": ~np.isin(s, special),
             "word_starts": np.ones(len(s), dtype=bool)} for i, s in enumerate(sequences(tok, count, seq))]


def make_collator(tok: Tokenizer) -> PretrainingCollator:
    return PretrainingCollator(build_masker(MaskingConfig(strategy="token", rate=0.15), tok), tok.pad_token_id, seed=0)


def prebuilt_batches(examples, collator: PretrainingCollator, batch: int, device: torch.device) -> list[dict]:
    """Masked batches on the device, built once: rows 1-3 time the model step alone."""
    return [{k: v.to(device) for k, v in collator(examples[i:i + batch], epoch=0).items()}
            for i in range(0, len(examples) - batch + 1, batch)]


# ------------------------------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, batches: list[dict], args: argparse.Namespace) -> float:
    """Median seconds per step over `repeats` runs of `steps` steps, after `warmup` untimed steps."""
    for i in range(args.warmup):
        step(batches[i % len(batches)])
    runs = []
    for _ in range(args.repeats):
        sync(args.device)
        start = time.perf_counter()
        for i in range(args.steps):
            step(batches[i % len(batches)])
        sync(args.device)
        runs.append((time.perf_counter() - start) / args.steps)
    return statistics.median(runs)


def model_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, args: argparse.Namespace):
    """forward (bf16 autocast), backward, optimizer step: the same for transformers' model and ours."""
    def step(batch: dict) -> None:
        with torch.autocast(args.device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def release() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ rows
def row_transformers(args: argparse.Namespace, batches: list[dict]) -> float:
    """Seconds per step of transformers' BertForMaskedLM (sdpa attention), decoder at every position."""
    import transformers

    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=args.hidden, num_hidden_layers=args.layers,
                                     num_attention_heads=args.heads, intermediate_size=args.ff,
                                     max_position_embeddings=max(512, args.seq), attn_implementation="sdpa")
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=True)
    seconds = timed(model_step(model, optimizer, args), batches, args)
    del model, optimizer
    release()
    return seconds


def our_config(args: argparse.Namespace) -> BertConfig:
    return BertConfig(vocab_size=VOCAB, hidden_size=args.hidden, num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, intermediate_size=args.ff,
                      max_position_embeddings=max(512, args.seq))


def row_ours(args: argparse.Namespace, batches: list[dict], compile: bool = False) -> float:
    """Seconds per step of bertology.BertForMaskedLM (logits at labelled positions only), eager or compiled."""
    torch.manual_seed(0)
    model = BertForMaskedLM(our_config(args)).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=True)
    runner = torch.compile(model, backend=args.backend) if compile else model
    seconds = timed(model_step(runner, optimizer, args), batches, args)
    del model, runner, optimizer
    release()
    return seconds


class _Clock(Callback):
    """Synchronised wall-clock readings after the given optimizer steps (and no others)."""

    def __init__(self, marks: set[int], device: torch.device) -> None:
        self.marks, self.device, self.times = marks, device, []

    def on_step_end(self, trainer: Trainer) -> None:
        if trainer.step in self.marks:
            sync(self.device)
            self.times.append(time.perf_counter())


def row_trainer(args: argparse.Namespace, examples: list[dict], collator: PretrainingCollator) -> float:
    """Seconds per step of PretrainingModel(["mlm"]) through Trainer.train(), masking and collating as it goes:
    `warmup` steps, then `repeats` runs of `steps` steps timed by a callback; no logging, no checkpoints."""
    total = args.warmup + args.repeats * args.steps
    marks = [args.warmup + k * args.steps for k in range(args.repeats + 1)]
    clock = _Clock(set(marks), args.device)
    config = TrainConfig(learning_rate=LR, weight_decay=0.01, schedule="constant", max_steps=total,
                         batch_size=args.batch, bf16=args.bf16, device=args.device.type,
                         compile=args.compile and args.backend == "inductor",
                         log_every=total + 1, save_every=0, plot=False, progress=False)
    torch.manual_seed(0)
    model = PretrainingModel(our_config(args), ["mlm"])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, examples, config, run_dir, collate=collator, callbacks=[clock])
        if args.compile and not config.compile:  # the smoke run: the Trainer's compile, with the quick backend
            trainer.module = torch.compile(trainer.module, backend=args.backend)
        trainer.train()
        del trainer
    del model
    release()
    return statistics.median((b - a) / args.steps for a, b in zip(clock.times, clock.times[1:], strict=False))


# ------------------------------------------------------------------------------------------------ main
def si(value: float) -> str:
    """1.23e13 -> '12.3 T'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= factor:
            return f"{value / factor:.1f} {prefix}"
    return f"{value:.0f} "


def main() -> None:
    args = parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_pretraining.py needs CUDA (no GPU here); run it on a GPU machine, or with --smoke to check it on the CPU")
        return
    if args.smoke:  # a CPU peak measured on a shared machine must not land in the user's cache
        os.environ["BERTOLOGY_CACHE"] = tempfile.mkdtemp(prefix="bertology-smoke-")
        atexit.register(shutil.rmtree, os.environ["BERTOLOGY_CACHE"], ignore_errors=True)
    import transformers

    transformers.logging.set_verbosity_error()
    peak_dtype = torch.bfloat16 if args.bf16 else torch.float32
    device_name = torch.cuda.get_device_name() if args.device.type == "cuda" else "CPU (smoke)"
    peak = matmul_peak_flops(peak_dtype, args.device.type, size=512 if args.smoke else None)

    tok = Tokenizer.from_pretrained(minilm_dir())
    collator = make_collator(tok)
    examples = pretraining_examples(tok, args.batch * args.batches, args.seq)
    batches = prebuilt_batches(examples, collator, args.batch, args.device)
    tokens = args.batch * args.seq
    labelled = statistics.mean(int((b["labels"] != -100).sum()) for b in batches)

    def flops(predicted: float) -> float:
        return encoder_training_flops(args.hidden, args.ff, args.layers, VOCAB, tokens, args.seq, predicted)

    useful = flops(labelled)  # our model's work: the MLM head at the labelled positions only
    rows: list[tuple[str, float, float]] = []  # (name, seconds per step, FLOPs the row's model computes)
    rows.append(("transformers BertForMaskedLM (sdpa)", row_transformers(args, batches), flops(tokens)))
    print(f"  {rows[-1][0]}: {1000 * rows[-1][1]:.1f} ms/step", flush=True)
    rows.append(("bertology BertForMaskedLM", row_ours(args, batches), useful))
    print(f"  {rows[-1][0]}: {1000 * rows[-1][1]:.1f} ms/step", flush=True)
    if args.compile:
        rows.append(("bertology BertForMaskedLM, torch.compile", row_ours(args, batches, compile=True), useful))
        print(f"  {rows[-1][0]}: {1000 * rows[-1][1]:.1f} ms/step", flush=True)
    trainer_name = "bertology Trainer + collator" + (", compiled" if args.compile else "")
    rows.append((trainer_name, row_trainer(args, examples, collator), useful))
    print(f"  {rows[-1][0]}: {1000 * rows[-1][1]:.1f} ms/step", flush=True)

    reference = rows[0][1]
    header = ["step", "ms/step", "tokens/s", "vs transformers", "FLOP/step run", "MFU"]
    table = [[name, f"{1000 * s:.1f}", f"{tokens / s:,.0f}", f"{reference / s:.2f}x", si(run),
              f"{100 * useful / s / peak:.1f}%"] for name, s, run in rows]
    dtype = "bf16 autocast" if args.bf16 else "fp32"
    print(f"\n{device_name}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{datetime.date.today().isoformat()}")
    print(f"L{args.layers}/H{args.hidden}/A{args.heads}/FF{args.ff}, vocab {VOCAB}, batch {args.batch} x {args.seq}, "
          f"{dtype}, AdamW fused; {labelled:.0f} labelled positions per batch on average")
    print(f"matmul peak ({str(peak_dtype).removeprefix('torch.')}, measured): {si(peak)}FLOP/s; MFU counts our "
          f"model's useful {si(useful)}FLOP/step for every row; medians of {args.repeats} runs of "
          f"{args.steps} steps after {args.warmup} warm-up steps\n")
    print(format_table(header, table))
    trainer_s = rows[-1][1]
    mfu, speedup = useful / trainer_s / peak, reference / trainer_s
    verdict = "(smoke run on the CPU: the targets do not apply)" if args.smoke else ""
    print(f"\ntargets (H200-class): Trainer MFU {100 * mfu:.1f}% (>= 50%: {'met' if mfu >= 0.5 else 'MISSED'}), "
          f"Trainer {speedup:.2f}x transformers (>= 1.8x: {'met' if speedup >= 1.8 else 'MISSED'}) {verdict}")
    if args.markdown:
        Path(args.markdown).write_text(format_table(header, table, markdown=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
