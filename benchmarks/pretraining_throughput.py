"""MLM pretraining throughput: bertology against transformers' BertForMaskedLM + DataCollatorForLanguageModeling.

Same configuration (L4/H256/A4, vocabulary 30,522, sequence 128, batch 32), same real text (English fortunes
tokenized with the MiniLM vocabulary and cut into full 128-token sequences), same AdamW, same threads. A step
is: collate and mask a batch, forward, backward, optimizer step. Prints tokens/s, the ratio, and for
bertology the share of step time spent masking and collating.

Run: python benchmarks/pretraining_throughput.py [--steps 6] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, Tokenizer  # noqa: E402
from bertology.assets import english_fortune_files, minilm_dir, read_fortunes  # noqa: E402
from bertology.data.collate import PretrainingCollator  # noqa: E402
from bertology.data.maskers import MaskingConfig, build_masker  # noqa: E402
from bertology.objectives import PretrainingModel  # noqa: E402
from bertology.training import TrainConfig  # noqa: E402
from bertology.training.optim import build_optimizer  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

SEQ, BATCH = 128, 32


def sequences(tok: Tokenizer, count: int) -> list[np.ndarray]:
    """Full-length sequences of real text: [CLS] 126 tokens [SEP]."""
    stream: list[int] = []
    for path in english_fortune_files():
        for entry in read_fortunes(path):
            stream.extend(tok.encode(entry)[1:-1])
            if len(stream) > count * (SEQ - 2):
                break
        if len(stream) > count * (SEQ - 2):
            break
    body = SEQ - 2
    return [np.array([tok.cls_token_id, *stream[i * body:(i + 1) * body], tok.sep_token_id], dtype=np.int64)
            for i in range(count)]


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def run_reference(seqs, bf16: bool, steps: int, repeats: int) -> float:
    import transformers

    hf_tok = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir()))
    collator = transformers.DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                     intermediate_size=1024, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    examples = [{"input_ids": s.tolist()} for s in seqs]

    def step(i):
        batch = collator(examples[(i * BATCH) % len(examples):][:BATCH])
        with autocast(bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed(step, steps, repeats)


def run_ours(seqs, bf16: bool, steps: int, repeats: int) -> tuple[float, float]:
    tok = Tokenizer.from_pretrained(minilm_dir())
    masker = build_masker(MaskingConfig(strategy="token", rate=0.15), tok)
    collator = PretrainingCollator(masker, tok.pad_token_id, seed=0)
    config = BertConfig.preset("mini", vocab_size=30522)
    torch.manual_seed(0)
    model = PretrainingModel(config, ["mlm"]).train()
    optimizer = build_optimizer(model, TrainConfig(learning_rate=1e-4, weight_decay=0.0))
    special = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    examples = [{"index": i, "input_ids": s, "token_type_ids": np.zeros_like(s),
                 "maskable": ~np.isin(s, list(special)), "word_starts": np.ones(len(s), dtype=bool)}
                for i, s in enumerate(seqs)]
    collate_seconds = []

    def step(i):
        start = time.perf_counter()
        batch = collator(examples[(i * BATCH) % len(examples):][:BATCH], epoch=0)
        collate_seconds.append(time.perf_counter() - start)
        with autocast(bf16):
            loss = model(**batch).losses["mlm"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = timed(step, steps, repeats)
    return seconds, statistics.median(collate_seconds)


def timed(step, steps: int, repeats: int) -> float:
    """Median seconds per step over `repeats` runs of `steps` steps (after one warm-up step)."""
    step(0)
    runs = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(1 + r * steps + i)
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    seqs = sequences(Tokenizer.from_pretrained(minilm_dir()), BATCH * (args.steps * args.repeats + 1))
    rows = []
    for bf16 in (False, True):
        ref = run_reference(seqs, bf16, args.steps, args.repeats)
        ours, collate = run_ours(seqs, bf16, args.steps, args.repeats)
        tokens = BATCH * SEQ
        rows.append(["bf16" if bf16 else "fp32", f"{tokens / ref:,.0f}", f"{tokens / ours:,.0f}", f"{ref / ours:.2f}x",
                     f"{100 * collate / ours:.1f}%"])
        print(format_table(["dtype", "transformers tok/s", "bertology tok/s", "ratio", "masking+collate share"],
                           rows[-1:]), flush=True)
    print(f"\nL4/H256/A4, vocab 30522, batch {BATCH} x {SEQ}, threads {args.threads}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}; seconds per step are medians of {args.repeats} runs of "
          f"{args.steps} steps")
    print(format_table(["dtype", "transformers tok/s", "bertology tok/s", "ratio", "masking+collate share"], rows))


if __name__ == "__main__":
    main()
