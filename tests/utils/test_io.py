"""Atomic writes and write checks: file-system failures are one FileSystemError naming path and cause."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

from bertology.errors import BertologyError, FileSystemError
from bertology.utils import io
from bertology.utils.io import (
    atomic_path,
    atomic_write,
    check_free_space,
    check_writable,
    translate_write_errors,
)

Usage = namedtuple("Usage", "total used free")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.txt") as handle:
            handle.write("x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == mode


@pytest.mark.parametrize(("code", "words"), [
    (errno.ENOSPC, "no space left"),
    (errno.EROFS, "read-only"),
    (errno.EACCES, "permission denied"),
    (errno.EPERM, "not permitted"),
])
def test_a_failed_write_is_one_clear_error_and_leaves_no_temp_file(tmp_path, code, words):
    (tmp_path / "out.json").write_text("old", encoding="utf-8")
    with pytest.raises(FileSystemError) as caught, atomic_write(tmp_path / "out.json") as handle:
        handle.write("new")
        raise OSError(code, os.strerror(code))
    message = str(caught.value)
    assert str(tmp_path / "out.json") in message and words in message and "\n" not in message
    assert isinstance(caught.value, BertologyError)
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == "old"  # the old file is intact
    assert _leftovers(tmp_path) == []


def test_a_path_inside_a_regular_file_or_onto_a_folder_is_clear(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(FileSystemError, match="file"), atomic_write(tmp_path / "file" / "out.json") as handle:
        handle.write("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileSystemError, match="is a folder"), atomic_write(tmp_path / "folder") as handle:
        handle.write("x")
    assert _leftovers(tmp_path) == []


def test_check_writable_names_the_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(FileSystemError) as caught:
        check_writable(tmp_path / "file" / "run", "the run folder")
    assert "the run folder" in str(caught.value) and str(tmp_path / "file") in str(caught.value)
    with pytest.raises(FileSystemError, match="is a folder"):
        check_writable(tmp_path, "the predictions file", folder=False)
    check_writable(tmp_path / "new" / "run", "the run folder")  # creates it
    assert (tmp_path / "new" / "run").is_dir() and list((tmp_path / "new" / "run").iterdir()) == []
    check_writable(tmp_path / "other" / "out.jsonl", "the predictions file", folder=False)
    assert not (tmp_path / "other" / "out.jsonl").exists()


@pytest.mark.parametrize(("code", "words"), [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_check_writable_reports_an_unwritable_folder(tmp_path, monkeypatch, code, words):
    # as root chmod does not stop writes: inject the failure
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(FileSystemError) as caught:
        check_writable(tmp_path, "the run folder")
    assert str(tmp_path) in str(caught.value) and words in str(caught.value)


def test_free_space_check(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 << 20, 9 << 20, 1 << 20))
    check_free_space(tmp_path, 1000, "a checkpoint")
    with pytest.raises(FileSystemError) as caught:
        check_free_space(tmp_path, 5 << 20, "a checkpoint")
    message = str(caught.value)
    assert str(tmp_path) in message and "no space" in message and "1.0 MB free" in message and "5.0 MB" in message


def test_a_writer_that_hides_the_cause_is_translated(tmp_path, monkeypatch):
    target = tmp_path / "optimizer.pt"
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 << 20, 10 << 20, 0))
    with pytest.raises(FileSystemError, match="no space left") as caught, translate_write_errors(target):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 741312 vs 741204")
    assert str(target) in str(caught.value)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 << 30, 1, 10 << 30))
    with pytest.raises(RuntimeError, match="unrelated"), translate_write_errors(target):
        raise RuntimeError("unrelated")  # with space to spare, other failures pass unchanged
    with pytest.raises(FileSystemError, match="read-only"), translate_write_errors(target):
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError as exc:
            raise RuntimeError("wrapped") from exc


def test_io_module_lists_the_causes():
    assert {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR} <= io.FILESYSTEM_ERRNOS
