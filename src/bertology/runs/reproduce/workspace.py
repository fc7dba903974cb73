"""What the claims share: one prepared data folder, and pretrained and fine-tuned models per variant and seed,
each built once (a folder that holds a finished result is read, an interrupted training continues).

The scale is the demo's `--quick` scale with a 4-layer model, so that a layer map has layers to choose
from: 4,000 lines of People's Daily and 4,000 unlabelled training reviews for pretraining (32-token sequences,
batches of 128, no dropout: what made a model this small learn more than copying within minutes), 800
labelled training reviews and 400 test reviews for sentiment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...utils.io import atomic_write
from ..demo import chinese
from ..demo.plan import QUICK, DemoPlan
from ..demo.stages import DemoContext
from . import words

SCALE = replace(QUICK, preset="bert-L4-H128", pretrain_steps=400,
                student={"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 256},
                probe_sentences=500)

#: pretraining variants: overrides of the demo's recipe (whole-word masking, masked LM alone, full sentences)
VARIANTS: dict[str, list[str]] = {
    "wwm": [],
    "char": ["masking.strategy=token"],
    # one fixed mask per sequence: with as many copies as epochs, static masks are the dynamic ones (measured:
    # identical accuracies on every seed with the recipe's 10 copies over 3 epochs)
    "static": ["masking.mode=static", "masking.static_copies=1"],
    "nsp": ["objectives={mlm: 1.0, nsp: 1.0}", "data.format=segment_pair"],
    "sop": ["objectives={mlm: 1.0, sop: 1.0}", "data.format=segment_pair"],
    "word": ["masking.strategy=token"],  # on the word-level corpus: each token is a word (or a piece of one)
}


@dataclass
class Workspace:
    root: Path
    plan: DemoPlan = SCALE
    _memo: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, build) -> dict[str, Any]:
        """`build()`'s result, stored in cache/KEY.json once it finishes."""
        path = self.root / "cache" / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        result = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            json.dump(result, handle, indent=2)
        return result

    @property
    def data(self) -> Path:
        folder = self.root / "shared"
        self.cached("data", lambda: chinese.data(DemoContext(out=folder, plan=self.plan, quick=True)))
        return folder / "data"

    @property
    def word_data(self) -> Path:
        """The same text cut into jieba words: a word-level WordPiece vocabulary (a word is one token, an unknown
        one falls back to pieces), the pretraining corpus, and the sentiment splits with words spaced."""
        folder = self.root / "shared-words"
        self.cached("word-data", lambda: words.prepare(self.data, folder, self.plan.vocab_size * 4))
        return folder

    def task(self, head: dict[str, Any] | None = None) -> dict[str, Any]:
        return chinese.sentiment_task(self.data, self.plan.max_length, head)

    def pretrained(self, variant: str, seed: int) -> str:
        """The model folder of pretraining `variant` with `seed` ("word": the word-level model)."""
        run_dir = self.root / "pretrain" / f"{variant}-seed{seed}"
        data = self.word_data if variant == "word" else self.data

        def build() -> dict[str, Any]:
            print(f"   pretraining: {variant}, seed {seed}", flush=True)
            return chinese.pretrain_model(data, run_dir, self.plan, seed, VARIANTS[variant])

        return self.cached(f"pretrain-{variant}-seed{seed}", build)["model"]

    def random_init(self, seed: int) -> str:
        folder = self.root / "pretrain" / f"random-seed{seed}"
        return str(chinese.random_init_folder(Path(self.pretrained("wwm", seed)), folder, seed))

    def finetuned(self, model: str, name: str, seed: int, method: str = "full",
                  head: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sentiment fine-tuned from `model` (named `name` in the cache): test accuracy and the model folder."""
        plan = self.plan
        run_dir = self.root / "finetune" / f"{name}-seed{seed}"
        lr, epochs = (plan.learning_rate, plan.epochs) if method == "full" else (2e-3, 10)
        task = (chinese.sentiment_task(self.word_data, plan.max_length, head) if name == "word" else self.task(head))

        def build() -> dict[str, Any]:
            print(f"   fine-tuning: {name}, seed {seed}", flush=True)
            return chinese.finetune_model(task, model, run_dir, lr, epochs, seed, method)

        return self.cached(f"finetune-{name}-seed{seed}", build)

    def tuned(self, variant: str, seed: int) -> dict[str, Any]:
        """The sentiment model fine-tuned from pretraining `variant` (the usual head and recipe)."""
        return self.finetuned(self.pretrained(variant, seed), variant, seed)

    def test_texts(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = chinese.read_jsonl(self.data / "sentiment" / "test.jsonl")
        return rows[:limit] if limit else rows
