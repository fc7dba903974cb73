"""`bertology probe`: probing classifiers per layer on a tagged corpus, with control tasks, into a report.

Reads tagged sentences (CoNLL-U, People's Daily's PKU `word/tag` lines, or JSONL `{"words": [...],
"tags": [...]}`), splits them by sentence (80/10/10, seeded), computes every layer's word representations
once (cached in the output folder), probes each layer for the tags and for the control task, and writes
report.md, results.json and probe.png. `random_init` probes the same architecture with random weights: the
baseline that says how much of a probe's accuracy the training put there.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis.probing import ProbeOptions, plot_results, probe_layers, results_table
from ..analysis.representations import WordRepresentations, word_representations
from ..errors import ConfigError, DataError
from ..utils.io import atomic_write

FORMATS = ("conllu", "pku", "jsonl")


@dataclass
class ProbeRun:
    model: str
    data: str
    out: str
    format: str | None = None
    column: str = "upos"
    probe: str = "linear"
    pooling: str = "first"
    sentences: int = 2000
    control: bool = True
    random_init: bool = False
    seed: int = 0
    #: tokens per sentence (words past it are left out): positions a model never trained on read as noise
    max_length: int = 128
    #: layers to probe (0 = embeddings; negative counts from the top); None: all
    layers: list[int] | None = None
    options: ProbeOptions | None = None


def read_tagged(path: str, fmt: str | None, column: str, limit: int) -> list[tuple[list[str], list[str]]]:
    """Up to `limit` (words, tags) sentences from `path`, in the file's order."""
    fmt = fmt or ("conllu" if path.endswith((".conllu", ".conll")) else "jsonl" if path.endswith(".jsonl") else "pku")
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {FORMATS}")
    out: list[tuple[list[str], list[str]]] = []
    if fmt == "conllu":
        from ..analysis.trees import read_conllu

        for sentence in read_conllu(path):
            tags = getattr(sentence, column, None)
            if tags is None:
                raise ConfigError(f"--column {column!r}: a CoNLL-U sentence has upos and xpos tags")
            out.append((list(sentence.words), list(tags)))
            if len(out) >= limit:
                break
        return out
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if fmt == "pku":
                from ..datasets.peoples_daily import parse_pku_line

                _, words = parse_pku_line(line, f"{path}:{number}: ")
                if words:
                    out.append(([w for w, _, _ in words], [t for _, t, _ in words]))
            else:
                try:
                    row = json.loads(line)
                    words, tags = list(row["words"]), list(row[column if column in row else "tags"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataError(f"{path}:{number}: expected {{\"words\": [...], \"tags\": [...]}} ({exc})") from None
                if len(words) != len(tags):
                    raise DataError(f"{path}:{number}: {len(words)} words but {len(tags)} tags")
                out.append((words, tags))
            if len(out) >= limit:
                break
    if not out:
        raise DataError(f"{path}: no tagged sentences")
    return out


def load_encoder(model: str, random_init: bool = False, seed: int = 0) -> torch.nn.Module:
    """The encoder a folder holds (a fine-tuned folder's encoder, a head model's encoder), in eval mode;
    with `random_init`, the same architecture freshly initialised (the analysis baseline)."""
    from ..assets import model_path
    from ..models import load

    folder = model_path(model)  # a folder, or an installed model's alias ("minilm")
    if (folder / "task.json").is_file():
        folder = folder / "encoder"
    encoder = load(folder)
    encoder = getattr(encoder, "bert", encoder)
    if random_init:
        torch.manual_seed(seed)
        encoder = type(encoder)(encoder.config)
    return encoder.eval()


def load_folder_tokenizer(model: str):
    """The tokenizer saved with a model folder (a fine-tuned folder's tokenizer/, else the folder's own)."""
    from ..assets import model_path
    from ..finetuning.model import tokenizer_folder
    from ..tokenization import load_tokenizer

    return load_tokenizer(tokenizer_folder(model_path(model)))


def cached_representations(model: str, sentences: list[list[str]], out: Path, pooling: str, random_init: bool,
                           seed: int, max_length: int, key: list) -> WordRepresentations:
    """Every layer's word representations of `sentences`, computed once and cached in `out` under a key of
    everything that changes them (the model folder, the data, pooling, random init, seed, length)."""
    digest = hashlib.sha256(json.dumps([model, pooling, random_init, seed, max_length, *key]).encode()).hexdigest()
    cache = out / f"representations-{digest[:12]}.safetensors"
    if cache.is_file():
        return WordRepresentations.load(cache)
    encoder, tokenizer = load_encoder(model, random_init, seed), load_folder_tokenizer(model)
    reps = word_representations(encoder, tokenizer, sentences, pooling, max_length=max_length, progress=True)
    reps.save(cache)
    return reps


def select_layers(reps: WordRepresentations, layers: list[int] | None, model: str) -> list[int]:
    """The layer indices asked for (all when None), negative ones counted from the top; a layer the model does
    not have is an error naming the model."""
    if layers is None:
        return list(range(reps.num_layers))
    out = []
    for k in layers:
        if not -reps.num_layers <= k < reps.num_layers:
            raise ConfigError(f"--layers: layer {k} does not exist in {model}: it has layers 0..{reps.num_layers - 1} "
                              "(0 = embeddings)")
        out.append(k % reps.num_layers)
    return out


def parse_layers(text: str | None) -> list[int] | None:
    """`--layers 0,3,-1` as a list (None for all)."""
    if not text:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--layers {text!r}: expected comma-separated layer numbers such as 0,3,6") from None


def probe(run: ProbeRun) -> dict[str, Any]:
    """Probe every layer; returns the summary written to results.json."""
    out = Path(run.out)
    sentences = read_tagged(run.data, run.format, run.column, run.sentences)
    order = list(range(len(sentences)))
    random.Random(run.seed).shuffle(order)
    split_of = {}
    for rank, index in enumerate(order):
        share = rank / len(order)
        split_of[index] = "train" if share < 0.8 else "dev" if share < 0.9 else "test"
    reps = cached_representations(run.model, [words for words, _ in sentences], out, run.pooling, run.random_init,
                                  run.seed, run.max_length, key=[run.data, run.column, run.sentences])
    layers = select_layers(reps, run.layers, run.model)
    words, labels, splits = [], [], []
    for index, (sentence_words, tags) in enumerate(sentences):
        kept = reps.kept[index]
        words += sentence_words[:kept]
        labels += tags[:kept]
        splits += [split_of[index]] * kept
    results = probe_layers([reps.layers[k] for k in layers], words, labels, splits, run.probe, run.options,
                           run.control)
    for result, k in zip(results, layers, strict=True):
        result.layer = k
    table = results_table(results, markdown=True)
    plot = plot_results(results, out / "probe.png", f"{run.column} probe ({run.probe}, {run.pooling} piece)")
    best = max(results, key=lambda r: r.accuracy)
    summary = {"model": run.model, "data": run.data, "random_init": run.random_init, "probe": run.probe,
               "pooling": run.pooling, "sentences": len(sentences), "words": len(words),
               "labels": len(set(labels)), "best_layer": best.layer, "best_accuracy": best.accuracy,
               "layers": [{**asdict(r), "selectivity": r.selectivity} for r in results]}
    with atomic_write(out / "results.json") as handle:
        json.dump(summary, handle, indent=2)
    lines = [f"# Probing {run.column} per layer", "",
             f"Model {run.model}{' (random initialisation)' if run.random_init else ''}; data {run.data} "
             f"({len(sentences)} sentences, {len(words)} words, {len(set(labels))} labels; split 80/10/10 by "
             f"sentence); {run.probe} probe on the {run.pooling} piece of each word; control task: a random "
             "label per word type (Hewitt and Liang 2019).", "", table, ""]
    if plot:
        lines.append("![probe accuracy per layer](probe.png)")
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print(results_table(results))
    return summary


__all__ = ["FORMATS", "ProbeRun", "cached_representations", "load_encoder", "load_folder_tokenizer", "parse_layers",
           "probe", "read_tagged", "select_layers"]
