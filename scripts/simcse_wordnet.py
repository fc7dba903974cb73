"""SimCSE on a real English task: reverse-dictionary retrieval on WordNet 3.0 with the real all-MiniLM-L6-v2.

The query is a synset's lemmas ("dog, domestic dog, Canis familiaris"), the right answer its definition,
the candidates every definition of the test split (1000 synsets, split by synset, seeded). Three rows:

- MiniLM as it is (mean pooling, as it was trained);
- after unsupervised SimCSE (`bertology pretrain`, objective simcse alone, mean pooling) on the definitions
  of the training synsets only (no test definition is seen);
- after supervised fine-tuning with `kind: sentence_embedding` on lemmas -> definition pairs of the training
  synsets, a co-hyponym's definition as hard negative.

Each row is also scored on a graded noun-pair set: Spearman of cosine against WordNet path similarity (a
hierarchy made by lexicographers, not human similarity judgments). Prints and writes OUT/table.md.

    python scripts/simcse_wordnet.py OUT [--steps 100] [--pairs 2000] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

import bertology.finetuning.tasks.sentence_embedding  # noqa: F401  (registers the task kind)
import bertology.objectives.contrastive  # noqa: F401  (registers the objective)
from bertology import load
from bertology.analysis.embeddings_eval import embed_texts, retrieval_scores, similarity_spearman
from bertology.assets import minilm_dir
from bertology.cli.main import main as cli
from bertology.data import prepare_corpus
from bertology.datasets.wordnet_pairs import write_wordnet_pairs
from bertology.runs.pretrain import Pretraining, load_config
from bertology.tokenization import Tokenizer


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def score_encoder(folder: Path, data: Path, max_length: int) -> dict[str, float]:
    """Retrieval on test.jsonl and Spearman on similarity_test.jsonl of a bare encoder, mean-pooled."""
    model, tok = load(folder), Tokenizer.from_pretrained(folder)
    test, graded = _rows(data / "test.jsonl"), _rows(data / "similarity_test.jsonl")

    def embed(texts: list[str]):
        return embed_texts(model, tok, texts, pooling="mean", max_length=max_length)

    scores = retrieval_scores(embed([r["text"] for r in test]), embed([r["positive"] for r in test]),
                              list(range(len(test))), ks=(1, 5))
    scores["spearman"] = similarity_spearman(embed([r["text"] for r in graded]),
                                             embed([r["positive"] for r in graded]), [r["score"] for r in graded])
    return scores


def unsupervised(out: Path, data: Path, steps: int, max_length: int) -> Path:
    """SimCSE alone on the training synsets' definitions (each one document); returns the exported encoder."""
    text = out / "glosses.txt"
    text.write_text("\n\n".join(r["positive"] for r in _rows(data / "train_glosses.jsonl")) + "\n", encoding="utf-8")
    minilm = minilm_dir()
    prepare_corpus([text], out / "corpus", Tokenizer.from_pretrained(minilm), progress=False)
    config = {
        "corpus": str(out / "corpus"), "tokenizer": str(minilm), "run_dir": str(out / "simcse"),
        "model": {"from_pretrained": str(minilm)},
        "data": {"format": "doc_sentences", "max_length": max_length, "short_seq_prob": 0.0, "eval_fraction": 0.0},
        "objectives": {"simcse": 1.0},
        "objective_options": {"simcse": {"temperature": 0.05, "unit": "sentence", "max_tokens": max_length,
                                         "pooling": "mean", "mlp": True}},
        "train": {"learning_rate": 3e-5, "warmup_ratio": 0.0, "schedule": "constant", "batch_size": 64,
                  "max_steps": steps, "eval_every": 0, "save_every": 0, "log_every": 10, "progress": False,
                  "bf16": False}}
    path = out / "simcse.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    Pretraining.build(load_config(str(path))).run()
    return out / "simcse" / "model"


def supervised(out: Path, data: Path, epochs: int, max_length: int) -> dict[str, float]:
    """`bertology finetune` with kind sentence_embedding; test retrieval and graded Spearman of its head."""
    task = {"kind": "sentence_embedding", "train": str(data / "train.jsonl"), "dev": str(data / "dev.jsonl"),
            "test": str(data / "test.jsonl"), "max_length": max_length, "head": {"pooling": "mean", "dropout": 0.0},
            "temperature": 0.05, "k": 5}
    config = {"model": str(minilm_dir()), "run_dir": str(out / "supervised"), "tasks": {"wordnet": task},
              "head_learning_rate": 1e-3,
              "train": {"epochs": epochs, "batch_size": 32, "learning_rate": 3e-5, "progress": False,
                        "plot": False}}
    path = out / "supervised.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    if cli(["finetune", str(path)]) != 0:
        raise SystemExit("fine-tuning failed")
    results = json.loads((out / "supervised" / "results.json").read_text())
    scores = {k: v for k, v in next(r for r in results if r["split"] == "test").items()
              if k in ("acc@1", "acc@5", "mrr")}
    graded = out / "graded.json"
    cli(["evaluate", str(out / "supervised" / "model"), str(data / "similarity_test.jsonl"), "-o", str(graded)])
    scores["spearman"] = json.loads(graded.read_text())["spearman"]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=100, help="unsupervised SimCSE steps (batch 64)")
    parser.add_argument("--pairs", type=int, default=2000, help="supervised training pairs (one epoch)")
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few steps and pairs, to check the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.pairs = 3, 64
    out, data = args.out, args.out / "data"
    out.mkdir(parents=True, exist_ok=True)
    stats = write_wordnet_pairs(data, seed=args.seed, dev=200 if args.smoke else 500,
                                test=200 if args.smoke else 1000, similarity_pairs=100 if args.smoke else 500)
    train = _rows(data / "train.jsonl")
    # the unsupervised run reads the same training synsets' definitions, never a dev or test one
    (data / "train_glosses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train[:max(args.steps * 64, 64)]),
                                              encoding="utf-8")
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train[:args.pairs]), encoding="utf-8")
    rows: list[tuple[str, dict[str, float], float]] = []
    start = time.perf_counter()
    rows.append(("all-MiniLM-L6-v2 as it is", score_encoder(minilm_dir(), data, args.max_length),
                 time.perf_counter() - start))
    start = time.perf_counter()
    encoder = unsupervised(out, data, args.steps, args.max_length)
    rows.append((f"+ unsupervised SimCSE ({args.steps} steps x 64)", score_encoder(encoder, data, args.max_length),
                 time.perf_counter() - start))
    start = time.perf_counter()
    rows.append((f"+ supervised sentence_embedding ({args.pairs} pairs, 1 epoch)",
                 supervised(out, data, 1, args.max_length), time.perf_counter() - start))
    lines = [f"WordNet 3.0 reverse dictionary: {stats['test_rows']} test queries, each against all "
             f"{stats['test_rows']} test definitions; graded: {stats['similarity_test_rows']} noun pairs "
             "(path similarity, not human judgments)", "",
             "| model | acc@1 | acc@5 | MRR | graded Spearman | seconds |", "|---|---|---|---|---|---|"]
    for name, s, seconds in rows:
        lines.append(f"| {name} | {s['acc@1']:.3f} | {s['acc@5']:.3f} | {s['mrr']:.3f} | {s['spearman']:.3f} "
                     f"| {seconds:.0f} |")
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
