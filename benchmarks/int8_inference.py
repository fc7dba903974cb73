"""Int8 inference on the CPU: every path against torch fp32, same process, same threads, same shapes, medians.

Paths (each on the same random-weight encoder, base size 12 x 768 by default, batch 32 x 128, no padding):
torch fp32 (the plain call), torch bf16 autocast, torch dynamic int8 (our `dynamic` method), torch static
int8 (our `static` method, calibrated on 8 batches of random ids), onnxruntime fp32, onnxruntime dynamic int8
and onnxruntime static int8 (`bertology export --int8 ...`'s defaults). Also prints the largest deviation of
each path's output from fp32 (cosine similarity per token, worst token), so speed is not bought blind.

Run: python benchmarks/int8_inference.py [--size base] [--threads 2] [--repeats 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bertology import BertConfig, BertModel  # noqa: E402
from bertology.compression.quantization import QuantizeOptions, quantize_encoder  # noqa: E402
from bertology.utils.table import format_table  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", help="a BertConfig preset (base, mini, ...)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = BertConfig.preset(args.size).replace(vocab_size=30522)
    fp32 = BertModel(config).eval()
    ids = torch.randint(1, config.vocab_size, (args.batch, args.seq))
    mask = torch.ones_like(ids)

    def calibrate(model: torch.nn.Module) -> None:
        for seed in range(8):
            g = torch.Generator().manual_seed(seed)
            model(torch.randint(1, config.vocab_size, (8, args.seq), generator=g), torch.ones(8, args.seq, dtype=torch.long))

    dynamic = copy.deepcopy(fp32)
    quantize_encoder(dynamic, "dynamic", QuantizeOptions())
    static = copy.deepcopy(fp32)
    with torch.no_grad():
        quantize_encoder(static, "static", QuantizeOptions(), calibrate)

    def bf16_call():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32(ids, mask).last_hidden_state.float()

    calls = {"torch fp32": lambda: fp32(ids, mask).last_hidden_state, "torch bf16 autocast": bf16_call,
             "torch dynamic int8": lambda: dynamic(ids, mask).last_hidden_state,
             "torch static int8": lambda: static(ids, mask).last_hidden_state}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from bertology.compression.export import export_onnx
            from bertology.compression.onnx_quantization import quantize_onnx
            from bertology.inference.onnx_runtime import OnnxModel

            export_onnx(fp32, Path(tmp) / "fp32" / "model.onnx")
            feeds = [{"input_ids": torch.randint(1, config.vocab_size, (8, args.seq),
                                                 generator=torch.Generator().manual_seed(s)),
                      "attention_mask": torch.ones(8, args.seq, dtype=torch.long),
                      "token_type_ids": torch.zeros(8, args.seq, dtype=torch.long)} for s in range(8)]
            quantize_onnx(Path(tmp) / "fp32" / "model.onnx", Path(tmp) / "dyn" / "model.onnx", "dynamic")
            quantize_onnx(Path(tmp) / "fp32" / "model.onnx", Path(tmp) / "static" / "model.onnx", "static",
                          calibration=feeds)
            batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
            for name, folder in (("onnxruntime fp32", "fp32"), ("onnxruntime dynamic int8", "dyn"),
                                 ("onnxruntime static int8", "static")):
                session = OnnxModel(Path(tmp) / folder / "model.onnx", threads=args.threads)
                calls[name] = (lambda s=session: torch.from_numpy(s.run(batch)["last_hidden_state"]))
        except ImportError as exc:
            print(f"onnxruntime paths skipped: {exc}")
        with torch.no_grad():
            reference = calls["torch fp32"]().reshape(-1, config.hidden_size)
            rows = []
            base = None
            for name, call in calls.items():
                out = call().float().reshape(-1, config.hidden_size)
                cosine = float(torch.nn.functional.cosine_similarity(out, reference, dim=-1).min())
                seconds = median_seconds(call, args.repeats)
                base = base or seconds
                rows.append([name, f"{args.batch * args.seq / seconds:,.0f}", f"{base / seconds:.2f}x",
                             f"{cosine:.4f}"])
    header = ["path", "tokens/s", "vs torch fp32", "worst-token cosine to fp32"]
    title = (f"{args.size} ({config.num_hidden_layers} x {config.hidden_size}), batch {args.batch} x {args.seq}, "
             f"{args.threads} threads, medians of {args.repeats}")
    print(title)
    print(format_table(header, rows))
    if args.markdown:
        args.markdown.write_text(f"{title}\n\n{format_table(header, rows, markdown=True)}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
