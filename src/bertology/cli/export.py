"""`bertology export`: a model folder to an ONNX graph checked against torch, optionally int8, with the report."""

from __future__ import annotations

import argparse

from ..compression.export import DEFAULT_OPSET

INT8_FILE = "model-int8.onnx"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (optionally int8) and compare it with torch",
                       description="Export MODEL (a fine-tuned model folder, or an encoder or masked-LM folder) to "
                                   "OUT/model.onnx with its sidecar model.json and tokenizer/, check the graph "
                                   "against torch (within 1e-4 on padded batches of new shapes), optionally write "
                                   "OUT/model-int8.onnx, and write report.md, results.json and metric_vs_speed.png "
                                   "comparing torch, ONNX and int8. `evaluate`, `predict` and `embed` run OUT "
                                   "with --backend onnx. Needs pip install 'bertology[export]'.")
    p.add_argument("model", help="model folder (run_dir/model for a fine-tuned model)")
    p.add_argument("out", help="output folder")
    p.add_argument("--task", help="the head to export (default: the model's first task)")
    p.add_argument("--int8", choices=("dynamic", "static"),
                   help="also write an int8 graph: dynamic (no data) or static (calibrated on --calibration)")
    p.add_argument("--calibration", metavar="FILE",
                   help="task file (the task's format, labels not needed) whose batches calibrate --int8 static")
    p.add_argument("--test", metavar="FILE", help="labelled task file: the report gives each variant's metric on it")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--threads", type=int, help="threads for torch and onnxruntime while timing (default: torch's)")
    p.add_argument("--no-speed", dest="speed", action="store_false", help="skip the latency and throughput timing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    import torch

    from ..compression import report as reporting
    from ..compression.export import encoder_of, export_onnx, require
    from ..compression.onnx_quantization import quantize_onnx
    from ..errors import ConfigError
    from ..inference.onnx_runtime import OnnxModel, feed_for_ids
    from ..utils.io import check_writable, translate_os_errors

    source, out = Path(args.model), Path(args.out)
    if not source.is_dir():
        raise ConfigError(f"{source}: no such model folder")
    fine_tuned = (source / "task.json").is_file()
    if not fine_tuned and not (source / "config.json").is_file():
        raise ConfigError(f"{source}: neither a fine-tuned model folder (task.json) nor a model folder (config.json)")
    if args.int8 == "static" and not args.calibration:
        raise ConfigError("--int8 static needs --calibration FILE (a task file whose batches set the int8 ranges)")
    if args.calibration and args.int8 != "static":
        raise ConfigError("--calibration applies to --int8 static")
    if (args.calibration or args.test) and not fine_tuned:
        raise ConfigError(f"--calibration and --test read task files, which need a fine-tuned model folder; {source} "
                          "has no task.json")
    for name in ("calibration", "test"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise ConfigError(f"--{name} {value}: no such file")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    require("onnx")
    require("onnxruntime")
    if source.absolute() == out.absolute():
        raise ConfigError(f"{out}: the output folder must differ from the model folder")
    check_writable(out, "the export folder")
    if args.threads:
        torch.set_num_threads(args.threads)

    session = None
    if fine_tuned:
        from ..finetuning.model import tokenizer_folder
        from ..finetuning.session import load_for_inference

        session = load_for_inference(source, args.task, "cpu")
        model, task = session.model, session.name
        tokenizer_dir = tokenizer_folder(source, model.base_path)
    else:
        from ..models import load

        model, task, tokenizer_dir = load(source).eval(), None, source
    tokenizer_out = out / "tokenizer"
    with translate_os_errors(tokenizer_out, "copy the tokenizer to"):
        shutil.copytree(tokenizer_dir, tokenizer_out, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "onnx"))

    data = {}
    for name in ("test", "calibration"):
        path = getattr(args, name)
        if path and session is not None:
            data[name] = session.read(path, name, require_labels=name == "test")

    def batches(name: str, limit: int, size: int = 16) -> list[dict]:
        return session.batches(data[name], size, limit) if name in data else []

    graph_path = out / "model.onnx"
    info = export_onnx(model, graph_path, task=task, opset=args.opset, tokenizer=tokenizer_out,
                       check_inputs=batches("test", 2) + batches("calibration", 2), source=str(source.absolute()))
    print(f"exported {info.kind} graph to {graph_path} (largest difference to torch: "
          + ", ".join(f"{k} {v:.2g}" for k, v in info.check.items()) + ")")
    graphs = {"onnx fp32": graph_path}
    if args.int8:
        int8_path = out / INT8_FILE
        settings = quantize_onnx(graph_path, int8_path, args.int8, calibration=batches("calibration", 32) or None)
        graphs[f"onnx int8 {args.int8}"] = int8_path
        print(f"quantized ({settings['mode']}, {settings['format']}) to {int8_path}")

    # ------------------------------------------------------------------------------ the report
    encoder = encoder_of(model)
    vocab = int(getattr(encoder, "fine", encoder).config.vocab_size)
    seq = min(reporting.DEFAULT_SEQ, info.max_positions or reporting.DEFAULT_SEQ)
    parameters = reporting.count_parameters(model)
    tokenizer_bytes = reporting.folder_size(tokenizer_out)

    def metric(backend: str, where: Path) -> tuple[str | None, float | None]:
        if "test" not in data:
            return None, None
        from ..finetuning.session import load_for_inference

        runner = session if backend == "torch" else load_for_inference(where, task, "cpu", backend="onnx")
        scores = runner.evaluate(data["test"])
        name = "accuracy" if "accuracy" in scores else next(iter(scores))
        return f"test {name}", float(scores[name])

    def speed(call) -> dict:
        if not args.speed:
            return {}
        one = reporting.measure_speed(call, 1, seq, vocab, repeats=5, warmup=1)
        many = reporting.measure_speed(call, reporting.THROUGHPUT_BATCH, seq, vocab, repeats=3, warmup=1)
        return {"latency_ms": one.latency_ms, "tokens_per_s": many.tokens_per_s, "threads": many.threads}

    report = reporting.CompressionReport(reference="torch", title=f"ONNX export of {source}")
    metric_name, value = metric("torch", source)

    def torch_call(ids: torch.Tensor) -> object:
        batch = feed_for_ids(ids, info)
        return model(**batch, task=task) if task else model(**batch)

    report.add(reporting.VariantMeasure(name="torch", parameters=parameters, size_bytes=reporting.folder_size(source),
                              metric_name=metric_name, metric=value, seq_len=seq, **speed(torch_call)))
    for name, path in graphs.items():
        graph = OnnxModel(path, threads=torch.get_num_threads())
        metric_name, value = metric("onnx", path)
        settings = graph.info.quantization or {}
        notes = ", ".join(f"{k} {settings[k]}" for k in ("mode", "format", "per_channel", "reduce_range", "op_types")
                          if k in settings)
        report.add(reporting.VariantMeasure(name=name, parameters=parameters,
                                  size_bytes=path.stat().st_size + tokenizer_bytes, metric_name=metric_name,
                                  metric=value, seq_len=seq, notes=notes, **speed(graph.speed_call())))
    report.write(out)
    print(report.render_terminal())
    print(f"report: {out / 'report.md'}")
    return 0
