"""The errors users see: each names the file, field or tensor at fault and what was expected."""


class BertologyError(Exception):
    """Base class for errors raised on bad user input."""


class ConfigError(BertologyError, ValueError):
    """A model or run configuration is missing a field, has a wrong type or an impossible value."""


class CheckpointError(BertologyError, ValueError):
    """A weights folder or file is missing, truncated, or does not fit the model."""


class DataError(BertologyError, ValueError):
    """A data file is unreadable, lacks a column, or has a row that does not fit its task; names file and line."""
