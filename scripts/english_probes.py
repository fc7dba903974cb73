"""English probing with the real MiniLM (all-MiniLM-L6-v2) against the same architecture at random weights.

Real English sentences: the example sentences quoted in WordNet 3.0's glosses (at least five words, shuffled
with seed 0), tagged and parsed by spaCy's small English pipeline (`bertology parse`: silver-standard tags
and trees). Then, for the trained and the random-weight model alike: part-of-speech probes per layer with
control tasks (`bertology probe`), structural probes (`bertology structural`) and number probes
(`bertology numbers`). Each step is a folder under OUT; a step whose results exist is skipped.

    python scripts/english_probes.py OUT [--sentences 5000]
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
from pathlib import Path

from bertology.assets import minilm_dir
from bertology.datasets.wordnet import wordnet_data_files


def wordnet_examples(minimum_words: int = 5) -> list[str]:
    """The quoted example sentences of every WordNet gloss, in file order."""
    out = []
    for path in wordnet_data_files():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  ") or " | " not in line:
                    continue
                for example in re.findall(r'"([^"]+)"', line.split(" | ", 1)[1]):
                    text = " ".join(example.split())
                    if len(text.split()) >= minimum_words:
                        out.append(text)
    return out


def bertology(*args: str, done: Path) -> None:
    if done.exists():
        print(f"skip (exists): {done}")
        return
    print("$ bertology", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "bertology.cli.main", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--sentences", type=int, default=5000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = out / "examples.txt"
    if not text.exists():
        examples = wordnet_examples()
        random.Random(0).shuffle(examples)
        text.write_text("\n".join(examples[:args.sentences]) + "\n", encoding="utf-8")
    trees = out / "examples.conllu"
    bertology("parse", str(text), str(trees), "--lines", str(args.sentences), "--min-words", "5", done=trees)
    model = str(minilm_dir())
    n = str(args.sentences)
    for name, extra in (("minilm", []), ("random", ["--random-init"])):
        bertology("probe", model, str(trees), str(out / f"upos-{name}"), "--sentences", n, *extra,
                  done=out / f"upos-{name}" / "results.json")
        bertology("structural", model, str(trees), str(out / f"structural-{name}"), "--sentences", n, *extra,
                  done=out / f"structural-{name}" / "results.json")
        bertology("numbers", model, str(out / f"numbers-{name}"), *extra, done=out / f"numbers-{name}" / "results.json")
    print(f"figure: {summary_plot(out)}")


def summary_plot(out: Path) -> Path:
    """One figure for the docs: each probe per layer, the trained model beside the random-weight one."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def load(name: str, file: str = "results.json") -> dict:
        return json.loads((out / name / file).read_text())

    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, style in (("minilm", "-"), ("random", "--")):
        label = "MiniLM" if name == "minilm" else "random init"
        upos, tree, numbers = load(f"upos-{name}"), load(f"structural-{name}"), load(f"numbers-{name}")
        layers = [r["layer"] for r in upos["layers"]]
        axes[0].plot(layers, [r["accuracy"] for r in upos["layers"]], style, marker="o", label=f"{label}: UPOS")
        axes[0].plot(layers, [r["control_accuracy"] for r in upos["layers"]], style, marker="s",
                     label=f"{label}: control task")
        layers = [r["layer"] for r in tree["layers"]]
        axes[1].plot(layers, [r["uuas"] for r in tree["layers"]], style, marker="o", label=f"{label}: UUAS")
        axes[1].plot(layers, [r["dspr"] for r in tree["layers"]], style, marker="s", label=f"{label}: distance Spearman")
        axes[2].plot([r["layer"] for r in numbers["layers"]], [r["r2"] for r in numbers["layers"]], style, marker="o",
                     label=f"{label}: R² of log magnitude")
    axes[1].axhline(tree["linear_chain_uuas"], color="grey", linestyle=":", label="chain baseline UUAS")
    titles = ["part of speech (linear probe)", "structural distance probe", "number magnitude (ridge)"]
    for axis, title in zip(axes, titles, strict=True):
        axis.set_title(title)
        axis.set_xlabel("layer (0 = embeddings)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "english-probes.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


if __name__ == "__main__":
    main()
