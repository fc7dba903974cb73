"""Odd paths given as inputs (a FIFO, character devices, a dangling link, a link loop, a folder that links
back to itself): each is named in one line with exit code 2, and nothing waits on a FIFO or reads a device
forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertology.assets import minilm_dir
from bertology.cli.main import main
from bertology.data.sources import describe_odd_path, list_input_files
from bertology.errors import DataError, FileSystemError
from bertology.finetuning.data import read_examples

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev (POSIX)")


@pytest.fixture
def odd(tmp_path) -> dict[str, Path]:
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    return {"pipe": tmp_path / "pipe.txt", "dangling": tmp_path / "dangling.txt", "loop": tmp_path / "loop-a",
            "null": Path("/dev/null"), "zero": Path("/dev/zero")}


WORDS = {"pipe": "is a FIFO (named pipe)", "dangling": "is a dangling symbolic link to", "loop": "symbolic link loop",
         "null": "is a character device", "zero": "is a character device"}


def _prepare(inputs: list[Path], out: Path) -> list[str]:
    return ["corpus", "prepare", *map(str, inputs), "-o", str(out), "--tokenizer", str(minilm_dir()),
            "--workers", "1", "--no-progress"]


@pytest.mark.parametrize("kind", sorted(WORDS))
def test_corpus_prepare_names_the_odd_input_in_one_line(odd, kind, tmp_path, capsys):
    if not odd[kind].exists() and kind in ("null", "zero"):
        pytest.skip(f"{odd[kind]} is not there")
    assert main(_prepare([odd[kind]], tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(odd[kind]) in err and WORDS[kind] in err
    assert not (tmp_path / "out").exists()  # refused before the output folder is made


def test_a_fifo_never_blocks_the_command(odd, tmp_path):
    # in a subprocess with a deadline: opening the FIFO would wait for a writer forever
    result = subprocess.run([sys.executable, "-m", "bertology.cli.main", *_prepare([odd["pipe"]], tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "is a FIFO" in result.stderr


def test_odd_entries_inside_a_folder_are_named_and_a_link_loop_is_not_followed(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("A document.\n", encoding="utf-8")
    (folder / "self").symlink_to(folder)  # a directory loop: the walk must not follow it
    assert list_input_files([folder]) == [folder / "a.txt"]
    os.mkfifo(folder / "b.txt")
    with pytest.raises(FileSystemError, match=r"docs/b.txt is a FIFO"):
        list_input_files([folder])
    (folder / "b.txt").unlink()
    (folder / "c.txt").symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(FileSystemError, match=r"docs/c.txt is a dangling symbolic link to .*nowhere.txt"):
        list_input_files([folder])


def test_a_folder_that_links_to_itself_prepares_once(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("One document here.\n", encoding="utf-8")
    (folder / "loop").symlink_to(folder)
    assert main(_prepare([folder], tmp_path / "out")) == 0
    from bertology.data import TokenCorpus

    assert TokenCorpus(tmp_path / "out").num_documents == 1


def test_describe_odd_path_only_stats(odd, tmp_path):
    assert describe_odd_path(tmp_path / "missing") is None
    (tmp_path / "plain.txt").write_text("x", encoding="utf-8")
    assert describe_odd_path(tmp_path / "plain.txt") is None and describe_odd_path(tmp_path) is None
    for kind, words in WORDS.items():
        if odd[kind].exists() or kind in ("dangling", "loop"):
            assert words in describe_odd_path(odd[kind])


@pytest.mark.parametrize("kind", ["pipe", "dangling", "null"])
def test_task_readers_refuse_odd_paths_with_a_data_error(odd, kind, tmp_path):
    path = odd[kind]
    if kind == "null":  # the reader checks the suffix first: a .jsonl link to the device
        path = tmp_path / "null.jsonl"
        path.symlink_to("/dev/null")
    elif kind == "pipe":
        path = tmp_path / "pipe.jsonl"
        os.mkfifo(path)
    else:
        path = tmp_path / "dangling.jsonl"
        path.symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(DataError, match=str(path)):
        read_examples(path, "classification")
