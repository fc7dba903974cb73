"""What each pretraining objective costs on top of plain MLM: step time and its share over MLM alone.

Builds each run exactly as `bertology pretrain` does (the `chinese-wwm` recipe's model, masking and optimiser,
doc_sentences input, on People's Daily prepared with jieba word starts: the first `--lines` lines), then times
full training steps: collate (masking and every objective's instance transform) + forward + backward + fused
AdamW, bf16 autocast as the recipe, the same batches (instances) for every row. Prints the median step time
and the extra share over MLM alone, so users can weigh an objective's cost.

Run: python benchmarks/objective_cost.py [--steps 8] [--repeats 3] [--lines 3000] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import Tokenizer  # noqa: E402
from bertology.assets import peoples_daily_path, peoples_daily_sentences  # noqa: E402
from bertology.data import prepare_corpus  # noqa: E402
from bertology.objectives import OBJECTIVES  # noqa: E402
from bertology.runs.pretrain import Pretraining, load_config  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402

ROWS = {
    "mlm": {"mlm": 1.0},
    "mlm + sbo": {"mlm": 1.0, "sbo": 1.0},
    "mlm + word_order": {"mlm": 1.0, "word_order": 1.0},
    "mlm + token_document": {"mlm": 1.0, "token_document": 1.0},
    "mlm + sentence_reordering": {"mlm": 1.0, "sentence_reordering": 1.0},
    "mlm + infoword": {"mlm": 1.0, "infoword": 1.0},
    "mlm + simcse": {"mlm": 1.0, "simcse": 1.0},
    "mlm + pmlm": {"mlm": 1.0, "pmlm": 1.0},
    "mlm + denoise": {"mlm": 1.0, "denoise": 1.0},
    "mlm + nsp (segment_pair)": {"mlm": 1.0, "nsp": 1.0},
}


def corpus(root: Path, lines: int) -> tuple[Path, Path]:
    text = ["".join(words) for words in islice(peoples_daily_sentences(), lines)]
    tok = Tokenizer.train(iter(text), vocab_size=8000, limit_alphabet=7000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    source = root / "pd.txt"
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        source.write_text("".join(islice(handle, lines)), encoding="utf-8")
    prepare_corpus([source], root / "corpus", tok, input_format="pku", chinese_words="jieba", progress=False)
    return root / "corpus", root / "tok"


def time_row(objectives: dict, corpus_dir: Path, tok: Path, run_dir: Path, steps: int, repeats: int) -> float:
    fmt = "segment_pair" if "nsp" in objectives else "doc_sentences"
    extra = ["model.type_vocab_size=3"] if "pmlm" in objectives else []  # its pseudo-masks' token type
    config = load_config("chinese-wwm", [*extra, f"corpus={corpus_dir}", f"tokenizer={tok}", f"run_dir={run_dir}",
                                         f"data.format={fmt}", "data.short_seq_prob=0.0",
                                         f"objectives={json.dumps(objectives)}",
                                         f"train.loss_weights={json.dumps(objectives)}"])
    run = Pretraining.build(config)
    model = run.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    weights = config.train.loss_weights
    size = config.train.batch_size

    def step(i: int) -> None:
        batch = run.collator([run.train_set[(i * size + k) % len(run.train_set)] for k in range(size)], epoch=0)
        with torch.autocast("cpu", dtype=torch.bfloat16) if config.train.bf16 else contextlib.nullcontext():
            out = model(**batch)
        loss = sum(weights.get(name, 1.0) * value for name, value in out.losses.items())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(0)  # warm-up
    medians = []
    for r in range(repeats):
        times = []
        for i in range(steps):
            start = time.perf_counter()
            step(1 + r * steps + i)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return statistics.median(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus_dir, tok = corpus(root, args.lines)
        rows, base = [], None
        for name, objectives in ROWS.items():
            missing = [o for o in objectives if o not in OBJECTIVES]
            if missing:
                print(f"skip {name}: {missing} not registered")
                continue
            seconds = time_row(objectives, corpus_dir, tok, root / name.replace(" ", ""), args.steps, args.repeats)
            base = base if base is not None else seconds
            rows.append([name, f"{seconds * 1000:.0f}", f"{seconds / base:.2f}x", f"{(seconds - base) / seconds:+.0%}"])
            print(format_table(["objectives", "ms/step (median)", "vs mlm", "share of the step it adds"], rows))
    print(f"\nbatch 32 x up to 128, L4/H256 (chinese-wwm), bf16 autocast, {args.threads} threads, "
          f"median of {args.repeats} x {args.steps} steps")


if __name__ == "__main__":
    main()
