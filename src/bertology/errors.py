"""The errors users see: each names the file, field or tensor at fault and what was expected."""


class BertologyError(Exception):
    """Base class for errors raised on bad user input."""


class ConfigError(BertologyError, ValueError):
    """A model or run configuration is missing a field, has a wrong type or an impossible value."""


class CheckpointError(BertologyError, ValueError):
    """A weights folder or file is missing, truncated, or does not fit the model."""


class DataError(BertologyError, ValueError):
    """A data file is unreadable, lacks a column, or has a row that does not fit its task; names file and line."""


class FileSystemError(BertologyError, OSError):
    """Reading or writing a file failed for a file-system reason (no space, read-only, permission, not a
    folder, a folder where a file should be); the message names the path, the operation and the cause."""

    def __str__(self) -> str:  # the message as written, even where errno and filename are set
        return str(self.args[0]) if self.args else ""


class RunFolderError(BertologyError):
    """A run folder that belongs to another run, is in use by another process, or whose stored config does not
    match the run asked to resume it."""


class RunInterrupted(BertologyError):
    """A run stopped by a signal before it finished; its checkpoint is saved and `--resume` continues it."""

    def __init__(self, message: str, signal_name: str | None = None) -> None:
        super().__init__(message)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130 SIGINT, 143 SIGTERM)."""
        return {"SIGTERM": 143}.get(self.signal_name or "", 130)


def one_line(exc: BaseException) -> str:
    """The line of an exception's message that says what happened: torch's weights-only refusal runs to several
    lines of advice, of which the one naming the unsupported global is the one a user needs."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
