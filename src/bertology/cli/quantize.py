"""`bertology quantize`: a fine-tuned model to int8 (torch dynamic or static layers, 8-bit embeddings,
Q8BERT's quantization-aware training), with the compression report."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..compression.quantization import QUANTIZERS

    p = sub.add_parser("quantize", help="make a fine-tuned model int8 and report size, speed and accuracy",
                       description="Quantize MODEL (a fine-tuned model folder) into RUN_DIR: RUN_DIR/model is the "
                                   "int8 model (evaluate, predict and bertology.load read it), report.md, "
                                   "results.json and metric_vs_speed.png compare it with the original. Methods: "
                                   "dynamic (int8 weights, inputs quantized per batch), static (input and output "
                                   "ranges calibrated on --calibration texts), qat (fine-tune further on --train "
                                   "under 8-bit rounding, then dynamic int8), embeddings (only the token table in "
                                   "8 bits). For onnxruntime's int8, see `bertology export --int8`.")
    p.add_argument("model", help="fine-tuned model folder (a finetune or distill run's model/)")
    p.add_argument("run_dir", help="output run folder")
    p.add_argument("--method", default="dynamic", choices=sorted(QUANTIZERS), help="default: dynamic")
    p.add_argument("--embeddings", action="store_true", help="also store the token embeddings in 8 bits")
    p.add_argument("--skip", action="append", default=[], metavar="PREFIX",
                   help="keep layers under this name prefix in fp32 (repeatable), e.g. --skip pooler")
    p.add_argument("--calibration", help="task file whose texts calibrate the static method (default: --test)")
    p.add_argument("--calibration-batches", type=int, default=16, help="batches of 32 for calibration (16)")
    p.add_argument("--test", help="labelled task file: score original and int8 model on it")
    p.add_argument("--train", help="qat: the task's training file")
    p.add_argument("--epochs", type=int, default=2, help="qat: epochs (2)")
    p.add_argument("--learning-rate", type=float, default=2e-5, help="qat: learning rate (2e-5)")
    p.add_argument("--no-speed", action="store_true", help="skip the latency and throughput timings")
    p.add_argument("--overwrite", action="store_true",
                   help="move a run already in the run folder aside (to RUN_DIR.old-DATE-TIME) and start afresh")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..compression.quantization import QuantizeOptions
    from ..runs.guard import claim_run_folder
    from ..runs.quantize import QATTraining, QuantizeRun, quantize

    config = QuantizeRun(model=args.model, run_dir=args.run_dir, method=args.method,
                         options=QuantizeOptions(embeddings=args.embeddings, skip=list(args.skip),
                                                 calibration_batches=args.calibration_batches),
                         calibration=args.calibration, test=args.test,
                         qat=QATTraining(train=args.train, epochs=args.epochs, learning_rate=args.learning_rate),
                         time_speed=not args.no_speed)
    config.validate()  # every check before the folder is claimed
    with claim_run_folder(config.run_dir, overwrite=args.overwrite):
        summary = quantize(config)
    print(f"quantized ({summary['method']}): {summary['model']}")
    return 0
