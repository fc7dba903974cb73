"""`bertology corpus prepare|info`: prepares a folder, prints and saves the summary, reports bad folders."""

from __future__ import annotations

import gzip
import json
import os
import re

import pytest

from bertology.assets import minilm_dir
from bertology.cli.main import main
from bertology.data import TokenCorpus


def test_corpus_is_a_registered_command_with_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["corpus", "prepare", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--input-format", "--text-field", "--language", "--chinese-words", "--record-case",
                   "--workers", "--doc-per-file", "--doc-per-line", "--max-line-chars"):
        assert option in out


def test_prepare_then_info(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"Mr. Smith went home. He slept.\n\nA second document.\n\nbad \xff line\n")
    with gzip.open(src / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"body": "From JSON. 中文句子。还有一句！"}) + "\n{oops\n")
    out = tmp_path / "out"
    code = main(["corpus", "prepare", str(src / "a.txt"), "-o", str(out), "--tokenizer", str(minilm_dir()),
                 "--record-case", "--workers", "1", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "documents" in printed and "lines that are not valid UTF-8" in printed and f"{src / 'a.txt'}:5" in printed
    assert "lines that are not valid UTF-8" in (out / "summary.md").read_text(encoding="utf-8")
    corpus = TokenCorpus(out)
    assert (corpus.num_documents, corpus.num_sentences) == (2, 3) and corpus.has_case

    code = main(["corpus", "prepare", str(src / "b.jsonl.gz"), "-o", str(out), "--tokenizer", str(minilm_dir()),
                 "--input-format", "jsonl", "--text-field", "body", "--chinese-words", "none", "--overwrite",
                 "--no-progress"])
    assert code == 0
    capsys.readouterr()
    corpus = TokenCorpus(out)
    assert (corpus.num_documents, corpus.num_sentences) == (1, 3) and not corpus.has_case
    assert corpus.meta["summary"]["skipped"] == {"jsonl_invalid_json": 1}

    assert main(["corpus", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "sentences" in info and "JSONL lines that are not JSON" in info
    assert re.search(rf"^tokens +{corpus.num_tokens:,}$", info, re.M)


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    assert main(["corpus", "info", str(tmp_path / "half")]) == 2
    err = capsys.readouterr().err
    assert "half has no meta.json" in err and "unfinished" in err
    (tmp_path / "in.txt").write_text("Text.\n", encoding="utf-8")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("", encoding="utf-8")
    assert main(["corpus", "prepare", str(tmp_path / "in.txt"), "-o", str(tmp_path / "used"),
                 "--tokenizer", str(minilm_dir()), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_english_prepares_without_jieba_installed_and_chinese_says_what_is_missing(tmp_path):
    """A core install has no Chinese tools: English text must prepare (with worker processes too), and
    Chinese text must name the missing package in one line."""
    import subprocess
    import sys

    from bertology.assets import minilm_dir

    (tmp_path / "en.txt").write_text("The cat sat on the mat. It was happy.\n\nA second document here.\n",
                                     encoding="utf-8")
    (tmp_path / "zh.txt").write_text("我们今天去北京。\n", encoding="utf-8")
    # jieba "not installed" in the command and in its worker processes (fresh interpreters): a module of that
    # name first on the path that fails to import, as a missing package does
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "jieba.py").write_text("raise ImportError('No module named jieba')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}

    def prepare(name: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bertology.cli.main", "corpus", "prepare", str(tmp_path / name),
                               "-o", str(tmp_path / f"out-{name}"), "--tokenizer", str(minilm_dir()),
                               "--no-progress", *extra], capture_output=True, text=True, timeout=120, env=env)

    for extra in ((), ("--language", "en"), ("--workers", "1")):
        result = prepare("en.txt", *extra, "--overwrite")
        assert result.returncode == 0, result.stderr
    result = prepare("zh.txt")
    assert result.returncode == 2 and "jieba" in result.stderr and "Traceback" not in result.stderr
