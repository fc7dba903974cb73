"""`bertology probe` end to end on a tiny model and a tagged JSONL file (and People's Daily's PKU lines)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from bertology import BertConfig, BertModel, Tokenizer
from bertology.assets import minilm_dir
from bertology.cli.main import main
from bertology.errors import DataError
from bertology.runs.probe import read_tagged

NOUNS, VERBS = ["dog", "cat", "tree", "house", "river"], ["runs", "sleeps", "eats", "sings", "falls"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    tok = Tokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=32)).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    rng = random.Random(0)
    with open(root / "tags.jsonl", "w", encoding="utf-8") as handle:
        for _ in range(300):
            words, tags = [], []
            for _ in range(3):
                words += ["the", rng.choice(NOUNS), rng.choice(VERBS)]
                tags += ["DET", "NOUN", "VERB"]
            handle.write(json.dumps({"words": words, "tags": tags}) + "\n")
    return root


def test_probe_writes_a_report_per_layer(folder, capsys):
    out = folder / "out"
    assert main(["probe", str(folder / "model"), str(folder / "tags.jsonl"), str(out), "--column", "tags"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["layer"] for r in results["layers"]] == [0, 1, 2]
    assert results["labels"] == 3 and results["sentences"] == 300
    # a word's type decides its tag here: even the embeddings are read perfectly, and so is the control task
    assert results["layers"][0]["accuracy"] > 0.99
    assert "| layer |" in (out / "report.md").read_text()
    assert (out / "probe.png").is_file() and list(out.glob("representations-*.safetensors"))
    # the cache is reused: same numbers, no new representations file
    assert main(["probe", str(folder / "model"), str(folder / "tags.jsonl"), str(out), "--column", "tags"]) == 0
    assert json.loads((out / "results.json").read_text())["layers"] == results["layers"]
    assert len(list(out.glob("representations-*.safetensors"))) == 1


def test_bad_tagged_lines_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"words": ["a", "b"], "tags": ["X"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl:1: 2 words but 1 tags"):
        read_tagged(str(bad), None, "tags", 10)


def test_peoples_daily_lines_read_as_words_and_tags():
    from bertology.assets import peoples_daily_path

    sentences = read_tagged(str(peoples_daily_path()), "pku", "upos", 3)
    words, tags = sentences[0]
    assert words[:2] == ["迈向", "充满"] and tags[:2] == ["v", "v"]


def test_attention_command_writes_statistics_groups_and_heatmaps(folder):
    texts = folder / "texts.txt"
    texts.write_text("the dog runs.\nthe cat sleeps, the river falls.\na house sings\n", encoding="utf-8")
    out = folder / "attention"
    assert main(["attention", str(folder / "model"), str(texts), str(out), "--groups", "3"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["sentences"] == 3 and data["tokens"] > 0
    assert len(data["heatmap_heads"]) >= 1 and (out / "heads.png").is_file()
    report = (out / "report.md").read_text()
    assert "Heads grouped by behaviour" in report and "entropy" in report
