"""`bertology parse`, `structural` and `numbers` end to end, and the --layers check, on a tiny model."""

from __future__ import annotations

import json
import random

import pytest
import torch

from bertology import BertConfig, BertModel, Tokenizer
from bertology.analysis.trees import Sentence, read_conllu, write_conllu
from bertology.assets import minilm_dir
from bertology.cli.main import main

WORDS = ["the", "dog", "cat", "runs", "sleeps", "river", "house", "falls", "tree", "sings"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("english")
    tok = Tokenizer.from_pretrained(minilm_dir())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=40)).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    # chains (each word's head is the next word, the last is the root) of 5-12 words
    rng = random.Random(0)
    sentences = []
    for _ in range(60):
        n = rng.randint(5, 12)
        sentences.append(Sentence([rng.choice(WORDS) for _ in range(n)], [i + 2 for i in range(n - 1)] + [0]))
    write_conllu(sentences, root / "chains.conllu")
    return root


def test_structural_command_reports_every_layer_and_the_chain_baseline(folder, capsys):
    out = folder / "structural"
    args = ["structural", str(folder / "model"), str(folder / "chains.conllu"), str(out), "--epochs", "2"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["layer"] for r in results["layers"]] == [0, 1, 2]
    assert results["split"] == {"train": 48, "dev": 6, "test": 6} and results["left_out_too_long"] == 0
    # every tree is the chain, so the chain baseline finds every edge
    assert results["linear_chain_uuas"] == 1.0
    for row in results["layers"]:
        assert 0.0 <= row["uuas"] <= 1.0 and 0.0 <= row["root_acc"] <= 1.0
    assert (out / "structural.png").is_file() and "| layer |" in (out / "report.md").read_text()
    assert "UUAS best at layer" in capsys.readouterr().out
    # the representations are cached: a second run with one probe reuses them and gives the same distance scores
    assert main([*args, "--probes", "distance"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["uuas"] for r in again["layers"]] == [r["uuas"] for r in results["layers"]]
    assert "root_acc" not in again["layers"][0]
    assert len(list(out.glob("representations-*.safetensors"))) == 1


def test_sentences_too_long_for_the_model_are_left_out_not_cut(folder):
    out = folder / "short"
    assert main(["structural", str(folder / "model"), str(folder / "chains.conllu"), str(out), "--epochs", "1",
                 "--max-length", "10", "--probes", "depth"]) == 0
    results = json.loads((out / "results.json").read_text())
    # [CLS] + 8 words + [SEP] fit in 10 tokens (each word here is one piece)
    fitting = sum(1 for s in read_conllu(folder / "chains.conllu") if len(s) <= 8)
    assert results["sentences"] == fitting and results["left_out_too_long"] == 60 - fitting


@pytest.mark.parametrize("command", ["probe", "structural"])
def test_a_layer_beyond_the_model_is_refused_by_name(folder, command, capsys):
    args = [command, str(folder / "model"), str(folder / "chains.conllu"), str(folder / f"bad-{command}"),
            "--layers", "0,5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "layer 5 does not exist" in err and str(folder / "model") in err and "0..2" in err


def test_numbers_command_counts_pieces_and_probes_every_layer(folder):
    out = folder / "numbers"
    assert main(["numbers", str(folder / "model"), str(out), "--count", "200", "--maximum", "100000"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["numbers"] == 200 and len(data["layers"]) == 3
    assert sum(sum(c.values()) for c in data["splits"].values()) == 200
    assert set(data["splits"]) <= {"1", "2", "3", "4", "5", "6"}
    # MiniLM's vocabulary holds every number below 100 as one piece, and no 5-digit number
    assert set(data["splits"]["1"]) == set(data["splits"]["2"]) == {"1"} and "1" not in data["splits"]["5"]
    assert (out / "numbers.png").is_file() and "Word pieces per number" in (out / "report.md").read_text()


def test_numbers_template_must_hold_one_slot(folder, capsys):
    assert main(["numbers", str(folder / "model"), str(folder / "n2"), "--template", "no slot here"]) == 2
    assert "needs exactly one {}" in capsys.readouterr().err


def test_parse_writes_silver_trees_that_read_back(tmp_path, capsys):
    pytest.importorskip("spacy")
    text = tmp_path / "text.txt"
    text.write_text("The old dog barked at the   mailman.\n\nShe reads books. He writes poems every day.\nHi\n",
                    encoding="utf-8")
    out = tmp_path / "trees.conllu"
    assert main(["parse", str(text), str(out), "--min-words", "3"]) == 0
    sentences = read_conllu(out)
    # three sentences of at least three words ("Hi" is too short); spaces are not words
    assert [s.words[0] for s in sentences] == ["The", "She", "He"]
    assert sentences[0].words == ["The", "old", "dog", "barked", "at", "the", "mailman", "."]
    assert sentences[0].upos[:3] == ["DET", "ADJ", "NOUN"] and sentences[0].heads.count(0) == 1
    she = sentences[1]  # a parse no English parser gets wrong: "reads" governs the rest
    assert she.words == ["She", "reads", "books", "."] and she.heads == [2, 0, 2, 2]
    assert she.xpos[:3] == ["PRP", "VBZ", "NNS"] and she.relations[1] == "root"
    assert "3 sentences" in capsys.readouterr().out


def test_parse_of_text_without_sentences_is_an_error(tmp_path, capsys):
    pytest.importorskip("spacy")
    text = tmp_path / "short.txt"
    text.write_text("Hi\nYes\n", encoding="utf-8")
    assert main(["parse", str(text), str(tmp_path / "x.conllu")]) == 2
    assert "short.txt: no sentence of 3-60 words" in capsys.readouterr().err
    assert not (tmp_path / "x.conllu").exists()
