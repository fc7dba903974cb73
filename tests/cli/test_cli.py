"""The command line: every subcommand has help, and embed / info / tokenizer train do their job."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bertology import BertModel, Tokenizer, pool
from bertology.assets import minilm_dir
from bertology.cli.main import build_parser, main

TEXTS = ["A man is playing a guitar.", "", "Someone plays an instrument on stage tonight.", "股市今天下跌。"]


def test_help_lists_every_subcommand_and_each_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    listing = capsys.readouterr().out
    for name in ("demo", "embed", "info", "tokenizer", "finetune", "evaluate", "predict", "task-data"):
        assert name in listing
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
    with pytest.raises(SystemExit):
        main(["tokenizer", "train", "--help"])
    assert "--vocab-size" in capsys.readouterr().out
    assert {"embed", "info", "tokenizer", "pretrain"} <= set(build_parser()._subparsers._group_actions[0].choices)


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "bertology.cli.main", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "embed" in done.stdout


def _reference_embeddings(texts):
    model = BertModel.from_pretrained(minilm_dir())
    tok = Tokenizer.from_pretrained(minilm_dir())
    batch = tok(texts, return_tensors="pt")
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    return pool(hidden, batch["attention_mask"], "mean", normalize=True).numpy()


def test_embed_writes_npy_and_jsonl_in_input_order(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    expected = _reference_embeddings(TEXTS)
    assert main(["embed", "--model", str(minilm_dir()), str(source), "-o", str(tmp_path / "out.npy"),
                 "--normalize", "--batch-size", "2"]) == 0
    got = np.load(tmp_path / "out.npy")
    assert got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert main(["embed", "--model", str(minilm_dir()), str(source), "-o", str(tmp_path / "out.jsonl"),
                 "--normalize"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == TEXTS and [r["line"] for r in rows] == [1, 2, 3, 4]
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_embed_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["embed", "--model", str(minilm_dir()), str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt: no such input file" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nsecond\n\xff\xfe broken\n")
    assert main(["embed", "--model", str(minilm_dir()), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.txt, line 3" in err and "UTF-8" in err
    good = tmp_path / "good.txt"
    good.write_text("hello\n", encoding="utf-8")
    assert main(["embed", "--model", str(tmp_path), str(good)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_info_counts_parameters_and_flops(capsys):
    assert main(["info", "mini", "--seq-len", "128"]) == 0
    out = capsys.readouterr().out
    total = BertModel(__import__("bertology").BertConfig.preset("mini")).num_parameters()
    assert f"{total:,}" in out
    assert "FLOPs per token" in out
    assert main(["info", str(minilm_dir())]) == 0
    out = capsys.readouterr().out
    assert "22,713,216" in out and "on disk" in out  # a folder also reports its size on disk


def test_tokenizer_train_command(tmp_path):
    corpus = tmp_path / "corpus.txt"
    lines = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(200)]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    assert main(["tokenizer", "train", str(corpus), "-o", str(tmp_path / "tok"), "--vocab-size", "120"]) == 0
    tok = Tokenizer.from_pretrained(tmp_path / "tok")
    assert tok.vocab_size <= 120
    assert tok.tokenize("The quick brown fox") == ["the", "quick", "brown", "fox"]
    assert main(["tokenizer", "train", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "t2")]) == 2


def test_embed_takes_the_minilm_name_and_refuses_a_folder_without_a_tokenizer_before_loading(tmp_path, capsys,
                                                                                            caplog):
    texts = tmp_path / "t.txt"
    texts.write_text("a cat sat on the mat\n", encoding="utf-8")
    assert main(["embed", "--model", "minilm", str(texts), "-o", str(tmp_path / "e.jsonl")]) == 0
    by_name = json.loads((tmp_path / "e.jsonl").read_text())["embedding"]
    assert main(["embed", "--model", str(minilm_dir()), str(texts), "-o", str(tmp_path / "f.jsonl")]) == 0
    assert by_name == json.loads((tmp_path / "f.jsonl").read_text())["embedding"]

    bare = tmp_path / "bare"
    BertModel.from_pretrained(minilm_dir()).save_pretrained(bare)  # weights, no tokenizer
    capsys.readouterr()
    caplog.clear()
    assert main(["embed", "--model", str(bare), str(texts), "-o", str(tmp_path / "g.jsonl")]) == 2
    assert "holds no tokenizer" in capsys.readouterr().err
    assert not any("not used by" in r.message or "not in the checkpoint" in r.message for r in caplog.records)
