"""Encoder inference throughput: bertology against transformers (sdpa), same weights, shapes and threads.

Two workloads:
- fixed: full batches of random ids, no padding (pure model speed);
- real text: English fortune entries and WordNet glosses of varying length, max 128 tokens, in batches
  of 32. transformers gets the batches as a user would make them (input order, padded to the longest);
  bertology runs (a) the same padded batches through the plain call `model(ids, mask, types)` (which packs
  real tokens by default), (b) the same with unpad=False (the padded path), and (c) length-sorted batches
  (what `embed`, `predict` and `evaluate` do by default). Tokens/s counts real tokens only.

Run: python benchmarks/encoder_inference.py [--threads 2] [--repeats 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertModel, Tokenizer  # noqa: E402
from bertology.assets import english_fortune_files, minilm_dir, read_fortunes, wordnet_data_files  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402


def real_texts(n: int, seed: int = 0) -> list[str]:
    texts = [t for f in english_fortune_files() for t in read_fortunes(f)]
    with open(next(p for p in wordnet_data_files() if p.name == "data.noun"), encoding="utf-8") as handle:
        texts += [line.split(" | ", 1)[1].strip() for line in handle if " | " in line]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--texts", type=int, default=512, help="real texts per pass")
    parser.add_argument("--sizes", default="mini,base")
    parser.add_argument("--markdown", help="also write the table as Markdown here")
    args = parser.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(minilm_dir())
    texts = real_texts(args.texts)
    batch_size, max_len = 32, 128
    as_given = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    by_length = sorted(texts, key=len)
    as_sorted = [by_length[i:i + batch_size] for i in range(0, len(by_length), batch_size)]
    enc = lambda groups: [tok(g, max_length=max_len, padding=True, return_tensors="pt") for g in groups]  # noqa: E731
    given_batches, sorted_batches = enc(as_given), enc(as_sorted)
    real_tokens = sum(int(b["attention_mask"].sum()) for b in given_batches)
    padded_tokens = sum(b["input_ids"].numel() for b in given_batches)

    rows = []
    for size in args.sizes.split(","):
        config = BertConfig.preset(size)
        ours = BertModel(config).eval()
        with tempfile.TemporaryDirectory() as folder:
            ours.save_pretrained(folder)
            ref = transformers.BertModel.from_pretrained(folder, attn_implementation="sdpa").eval()
        fixed_batch = 32 if size == "mini" else 8
        ids = torch.randint(1000, config.vocab_size, (fixed_batch, 128))
        mask = torch.ones_like(ids)

        for dtype in ("fp32", "bf16"):
            def run(model, batches, unpad=None, dtype=dtype):
                def go():
                    with torch.inference_mode(), autocast(dtype):
                        for b in batches:
                            kwargs = {} if unpad is None else {"unpad": unpad}
                            model(b["input_ids"], attention_mask=b["attention_mask"],
                                  token_type_ids=b["token_type_ids"], **kwargs)
                return go

            fixed = [{"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}]
            t_ref = median_seconds(run(ref, fixed), args.repeats)
            t_ours = median_seconds(run(ours, fixed), args.repeats)
            n = ids.numel()
            rows.append([size, dtype, f"fixed {fixed_batch}x128", f"{n / t_ref:,.0f}", f"{n / t_ours:,.0f}",
                         f"{t_ref / t_ours:.2f}x"])

            t_ref = median_seconds(run(ref, given_batches), max(1, args.repeats // 2))
            t_plain = median_seconds(run(ours, given_batches), max(1, args.repeats // 2))  # the default call
            t_padded = median_seconds(run(ours, given_batches, unpad=False), max(1, args.repeats // 2))
            t_sorted = median_seconds(run(ours, sorted_batches), max(1, args.repeats // 2))
            for label, t in (("real text, plain call", t_plain), ("real text, unpad=False", t_padded),
                             ("real text, plain call, bucketed", t_sorted)):
                rows.append([size, dtype, label, f"{real_tokens / t_ref:,.0f}", f"{real_tokens / t:,.0f}",
                             f"{t_ref / t:.2f}x"])
            print(format_table(["size", "dtype", "workload", "transformers tok/s", "bertology tok/s", "ratio"],
                               rows[-4:]), flush=True)

    header = ["size", "dtype", "workload", "transformers tok/s", "bertology tok/s", "ratio"]
    print(f"\nthreads {args.threads}, torch {torch.__version__}, transformers {transformers.__version__}; "
          f"real text: {len(texts)} texts, {real_tokens} real tokens in {padded_tokens} padded positions "
          f"({100 * (1 - real_tokens / padded_tokens):.0f}% padding); medians of {args.repeats} runs")
    print(format_table(header, rows))
    if args.markdown:
        Path(args.markdown).write_text(format_table(header, rows, markdown=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
