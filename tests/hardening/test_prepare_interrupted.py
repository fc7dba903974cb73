"""`bertology corpus prepare` killed midway (SIGKILL after its first shard): the folder never opens as a corpus,
and running the same command again restarts cleanly, giving exactly the shards of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bertology.assets import minilm_dir
from bertology.cli.main import main
from bertology.data import TokenCorpus
from bertology.data.shards import CorpusError

# Runs the real command, but kills the process (SIGKILL: no cleanup can run) once the first shard is finished
# and the next one is half written.
KILLER = """
import os, signal, sys
from bertology.data import shards
original = shards.ShardWriter.add
def add(self, *args, **kwargs):
    original(self, *args, **kwargs)
    if len(self.shards) >= 1 and self._open is not None:
        for handle in self._open["files"].values():
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
shards.ShardWriter.add = add
from bertology.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _input(path: Path, documents: int, word: str = "sentence") -> Path:
    path.write_text("".join(f"This is {word} {i} of document {i}. It has a second {word}.\n\n"
                            for i in range(documents)), encoding="utf-8")
    return path


def _args(source: Path, out: Path, *extra: str) -> list[str]:
    return ["corpus", "prepare", str(source), "-o", str(out), "--tokenizer", str(minilm_dir()), "--workers", "1",
            "--shard-tokens", "300", "--no-progress", *extra]


def _killed(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.bin"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The input and an uninterrupted preparation of it."""
    root = tmp_path_factory.mktemp("ref")
    source = _input(root / "in.txt", 120)
    assert main(_args(source, root / "whole")) == 0
    return source, root / "whole"


def test_a_killed_preparation_never_opens_and_a_rerun_restarts_cleanly(reference, tmp_path, caplog):
    source, whole = reference
    out = tmp_path / "out"
    _killed(_args(source, out))
    names = sorted(p.name for p in out.iterdir())
    assert "shard-00000" in names and "meta.json" not in names
    assert [n for n in names if n.startswith(".shard-") and n.endswith(".tmp")]  # one was half written
    with pytest.raises(CorpusError, match="no meta.json.*unfinished"):
        TokenCorpus(out)
    assert main(["corpus", "info", str(out)]) == 2

    assert main(_args(source, out)) == 0  # the same command, no --overwrite: it restarts
    assert any("unfinished preparation" in r.getMessage() for r in caplog.records)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary shard left
    assert _shard_bytes(out) == _shard_bytes(whole)
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in out.glob("shard-*")) == [s["name"] for s in meta["shards"]]
    TokenCorpus(out).verify()


def test_a_killed_overwrite_never_mixes_old_and_new_shards(reference, tmp_path):
    source, whole = reference
    out = tmp_path / "out"
    old = _input(tmp_path / "old.txt", 400, word="line")  # more shards than the new corpus will have
    assert main(_args(old, out)) == 0
    old_count = len(list(out.glob("shard-*")))
    assert old_count > len(list(whole.glob("shard-*")))
    _killed(_args(source, out, "--overwrite"))
    assert not (out / "meta.json").exists()  # the old corpus is gone, the new one is not yet there
    with pytest.raises(CorpusError, match="unfinished"):
        TokenCorpus(out)
    assert main(_args(source, out)) == 0
    assert _shard_bytes(out) == _shard_bytes(whole)  # none of the old shards is left over


def test_a_folder_with_other_files_is_still_refused_without_overwrite(reference, tmp_path, capsys):
    source, _ = reference
    out = tmp_path / "out"
    _killed(_args(source, out))
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    assert main(_args(source, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"


def test_a_complete_corpus_is_still_refused_without_overwrite(reference, capsys):
    source, whole = reference
    before = _shard_bytes(whole)
    assert main(_args(source, whole)) == 2
    assert "not empty" in capsys.readouterr().err
    assert _shard_bytes(whole) == before and (whole / "meta.json").is_file()
