"""Atomic file writes: a crash mid-write leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import FileSystemError

# The file-system causes a user can act on, in their words.
_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EEXIST: "it already exists",
    errno.ENAMETOOLONG: "the name is too long",
}
FILESYSTEM_ERRNOS = frozenset(_CAUSES)


def describe_os_error(exc: OSError) -> str:
    """The cause of `exc` in plain words (its errno's, else the system's text)."""
    return _CAUSES.get(exc.errno, exc.strerror or str(exc))


def filesystem_error(exc: OSError, path: str | os.PathLike, operation: str) -> FileSystemError:
    """`exc` as one line naming `path`, `operation` and the cause (raise it `from exc`)."""
    if isinstance(exc, FileSystemError):
        return exc
    error = FileSystemError(f"cannot {operation} {path}: {describe_os_error(exc)}")
    error.errno = exc.errno
    error.filename = str(path)
    return error


@contextlib.contextmanager
def translate_os_errors(path: str | os.PathLike, operation: str) -> Iterator[None]:
    """Turn a file-system OSError (no space, read-only, permission, ENOTDIR, EISDIR) into a FileSystemError."""
    try:
        yield
    except FileSystemError:
        raise
    except OSError as exc:
        if exc.errno in FILESYSTEM_ERRNOS:
            raise filesystem_error(exc, getattr(exc, "filename", None) or path, operation) from exc
        raise


def _os_error_in(exc: BaseException | None) -> OSError | None:
    """The file-system OSError behind `exc`, following its cause and context, if any."""
    for _ in range(10):
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in FILESYSTEM_ERRNOS:
            return exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


_SPACE_FLOOR = 1 << 20  # under this many bytes free, a failed write is put down to a full disk


def _probable_cause(folder: Path, exc: BaseException) -> str | None:
    """Why a write into `folder` failed when the writer did not say (torch.save, safetensors)."""
    text = str(exc)
    if "No space left" in text or "os error 28" in text or "StorageFull" in text:
        return _CAUSES[errno.ENOSPC]
    try:
        if shutil.disk_usage(folder).free < _SPACE_FLOOR:
            return _CAUSES[errno.ENOSPC]
    except OSError:
        pass
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return _CAUSES[errno.EROFS]
    except (OSError, AttributeError):
        pass
    if "Permission denied" in text or "os error 13" in text:
        return _CAUSES[errno.EACCES]
    return None


@contextlib.contextmanager
def translate_write_errors(path: str | os.PathLike, operation: str = "write") -> Iterator[None]:
    """Like `translate_os_errors`, for writers that hide the OSError (torch.save's `RuntimeError: [enforce
    fail at inline_container.cc] ... unexpected pos`, safetensors' own error): the cause is taken from the
    exception chain, else from the folder's free space and read-only flag; other failures pass unchanged."""
    try:
        yield
    except FileSystemError:
        raise
    except Exception as exc:
        found = _os_error_in(exc)
        if found is not None:
            raise filesystem_error(found, getattr(found, "filename", None) or path, operation) from exc
        if isinstance(exc, OSError):
            raise
        cause = _probable_cause(Path(path).parent, exc)
        if cause is None:
            raise
        raise FileSystemError(f"cannot {operation} {path}: {cause}") from exc


def _umask() -> int:
    """The process umask, read without changing it where the system shows it (Linux), else set and reset."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # briefly the strictest mask a racing thread could see, never a looser one
    os.umask(mask)
    return mask


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        if path.is_symlink():
            break
        path = path.parent
    return path


def check_writable(path: str | os.PathLike, what: str, folder: bool = True) -> None:
    """Fail now, with one clear line, if `path` (a folder, or with folder=False a file) cannot be written.

    Checks that no part of the path is a file (or, for a file, that it is not a folder), creates the folder
    (for a file, its parent) and writes and removes a probe file there. Call before long work starts.
    """
    target = Path(path)
    where = target if folder else target.parent
    if not folder and target.is_dir():
        raise FileSystemError(f"cannot write {what} {target}: it is a folder, not a file")
    if not folder and target.exists() and not target.is_file():
        raise FileSystemError(f"cannot write {what} {target}: it is not a regular file")
    ancestor = _existing_ancestor(where)
    if ancestor.exists() and not ancestor.is_dir():
        raise FileSystemError(f"cannot write {what} {target}: {ancestor} is a file, not a folder")
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise filesystem_error(exc, target, f"write {what}") from exc


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse, naming `folder` and both sizes, when its file system has less than `needed` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: let the write itself report
    if free < needed:
        raise FileSystemError(f"cannot write {what} in {folder}: no space left on the device "
                              f"({_size(free)} free, {_size(needed)} needed)")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    For writers that want a file name rather than a handle (safetensors, numpy).
    The file gets the mode a plain `open` would give (0666 less the umask), not mkstemp's 0600. A
    file-system failure (no space, read-only, permission, a file in the path) is a FileSystemError naming
    `path`; the temporary file is removed whatever goes wrong.
    """
    target = Path(path)
    with translate_os_errors(target, "write"):
        if target.is_dir():
            raise FileSystemError(f"cannot write {target}: it is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
    try:
        with translate_write_errors(target, "write"):
            yield Path(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing and rename it over `path` once complete."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()


def cache_dir() -> Path:
    """bertology's own cache (measured matmul peaks, ONNX exports made on the fly): `$BERTOLOGY_CACHE` if set,
    else `~/.cache/bertology`."""
    return Path(os.environ.get("BERTOLOGY_CACHE") or Path.home() / ".cache" / "bertology")
