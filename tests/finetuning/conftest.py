"""A toy fine-tuning workspace: a tiny WordPiece encoder and small, learnable files for every task kind."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.tokenization import Tokenizer

WORDS = "the a is on cat dog mat sat john paris city in red fox new york who where ?".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_workspace(root: Path) -> Path:
    """Writes enc/ (encoder + tokenizer) and cls/, ner/, qa/, mc/ task files under `root`."""
    rng = random.Random(0)
    enc = root / "enc"
    enc.mkdir(parents=True)
    (enc / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    Tokenizer.from_pretrained(enc / "vocab.txt").save_pretrained(enc)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(enc)

    # classification (the label is the animal named in the sentence) and a regression target beside it
    rows = []
    for _ in range(120):
        words = [rng.choice(["the", "a", "is", "on", "mat", "sat", "red"]) for _ in range(5)]
        label = rng.choice(["cat", "dog"])
        words.insert(rng.randrange(5), label)
        rows.append({"text": " ".join(words), "label": label, "score": 1.0 if label == "cat" else 0.0})
    for name, part in (("train", rows[:80]), ("dev", rows[80:100]), ("test", rows[100:])):
        _jsonl(root / "cls" / f"{name}.jsonl", part)

    # tagging (CoNLL): john is a person, paris and "new york" are places
    sentences = []
    for _ in range(60):
        words, tags = [], []
        for _ in range(rng.randint(3, 7)):
            r = rng.random()
            if r < 0.2:
                words, tags = words + ["john"], tags + ["B-PER"]
            elif r < 0.35:
                words, tags = words + ["new", "york"], tags + ["B-LOC", "I-LOC"]
            elif r < 0.45:
                words, tags = words + ["paris"], tags + ["B-LOC"]
            else:
                words, tags = words + [rng.choice(["the", "a", "is", "on", "sat", "in"])], tags + ["O"]
        sentences.append("\n".join(f"{w}\t{t}" for w, t in zip(words, tags, strict=True)) + "\n")
    (root / "ner").mkdir()
    for name, part in (("train", sentences[:40]), ("dev", sentences[40:50]), ("test", sentences[50:])):
        (root / "ner" / f"{name}.conll").write_text("\n".join(part), encoding="utf-8")

    # extractive QA with contexts longer than one window
    qa = []
    for i in range(40):
        city = rng.choice(["paris", "new york"])
        before = " ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat"]) for _ in range(rng.randint(3, 20)))
        after = " ".join(rng.choice(["the", "dog", "sat"]) for _ in range(rng.randint(3, 20)))
        context = f"{before} john is in {city} . {after}"
        start = context.index(f"in {city}") + 3
        qa.append({"id": str(i), "context": context, "question": "where is john ?",
                   "answers": [{"text": city, "answer_start": start}]})
    _jsonl(root / "qa" / "train.jsonl", qa[:30])
    _jsonl(root / "qa" / "dev.jsonl", qa[30:])

    # multiple choice
    mc = []
    for _ in range(40):
        right = rng.randrange(3)
        choices = ["the dog sat", "a dog sat", "the mat"]
        choices[right] = "the cat sat"
        mc.append({"question": "who sat ?", "choices": choices, "label": right})
    _jsonl(root / "mc" / "train.jsonl", mc[:30])
    _jsonl(root / "mc" / "dev.jsonl", mc[30:])
    return root


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("finetune"))
