"""Shared small-model fixtures: one tiny BERT configuration, model and tokenizer for every test that needs
"some small model" rather than a particular one, so that the sizes (and their cost) are decided once.

Everything is seeded and built in well under a second (the tokenizer, trained once per session, in about
one); tests that need other sizes derive them with `make_tiny_config(cls, **changes)` or
`tiny_config.replace(...)`, so what differs from the shared model is visible in the test itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
import torch

from bertology import BertConfig, BertModel, WordPieceTokenizer
from bertology.assets import peoples_daily_sentences
from bertology.runs.finetune import Finetuning, finetune_config

#: The tiny encoder: big enough for two heads per layer and real attention patterns, small enough that a
#: forward pass is a fraction of a millisecond on one CPU thread.
TINY_SIZES: dict[str, Any] = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=32)


@pytest.fixture
def make_tiny_config() -> Callable[..., BertConfig]:
    """`make(cls=BertConfig, **changes)`: the tiny sizes in any config class (ChineseBertConfig, ...)."""

    def make(cls: type[BertConfig] = BertConfig, **changes: Any) -> BertConfig:
        return cls(**{**TINY_SIZES, **changes})

    return make


@pytest.fixture
def tiny_config(make_tiny_config) -> BertConfig:
    """A fresh tiny BertConfig (a new object per test: tests may change it)."""
    return make_tiny_config()


@pytest.fixture
def tiny_bert(tiny_config) -> BertModel:
    """A BertModel of `tiny_config` with fixed initial weights (seed 0), in eval mode."""
    torch.manual_seed(0)
    return BertModel(tiny_config).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> WordPieceTokenizer:
    """A WordPiece vocabulary (about 2,000 tokens) trained on 400 People's Daily lines: Chinese characters
    one token each, plus the Latin letters, digits and punctuation those lines hold. Shared: keep it as is."""
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 400)]
    return WordPieceTokenizer.train(iter(lines), vocab_size=2500, limit_alphabet=2500, min_frequency=1)


@pytest.fixture(autouse=True)
def _peak_cache(tmp_path_factory, monkeypatch) -> None:
    """Keep the measured matmul peak (training/peak.py) out of the real home: one cache for the session."""
    folder = tmp_path_factory.getbasetemp() / "bertology-cache"
    monkeypatch.setenv("BERTOLOGY_CACHE", str(folder))


# ---------------------------------------------------------------- a toy fine-tuned classifier (compression, analysis)
_spec = importlib.util.spec_from_file_location("compression_workspace",
                                               Path(__file__).parent / "finetuning" / "conftest.py")
_workspace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_workspace)  # type: ignore[union-attr]

TOY_QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


def fine_tuned_toy(root: Path, run: str, epochs: int) -> Path:
    """Write the workspace under `root` and fine-tune its encoder on the animal task into root/run; returns
    root (the model is root/run/model, the task files root/cls/{train,dev,test}.jsonl)."""
    _workspace.build_workspace(root)
    config = finetune_config({"model": str(root / "enc"), "run_dir": str(root / run),
                              "tasks": {"animal": {"kind": "classification", "train": str(root / "cls/train.jsonl"),
                                                   "test": str(root / "cls/test.jsonl"), "max_length": 16}},
                              "train": {**TOY_QUICK, "epochs": epochs}})
    Finetuning(config).run()
    return root


@pytest.fixture(scope="session")
def fine_tune_toy():
    """`fine_tuned_toy` for a test module's own fixture: `fine_tune_toy(tmp_path_factory.mktemp(...), run, epochs)`."""
    return fine_tuned_toy
