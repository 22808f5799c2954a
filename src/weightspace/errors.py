"""Errors that the CLI turns into one clear line instead of a traceback."""


class WeightspaceError(Exception):
    """Base class for errors caused by the user's input (files, flags, configs)."""


class ZooFormatError(WeightspaceError):
    """A directory is not a weightspace zoo, or its files do not agree with its manifest."""


class ConfigError(WeightspaceError):
    """A configuration value is missing, malformed or inconsistent."""


class StorageError(WeightspaceError):
    """A file cannot be written: the disk is full, read-only, or the place is not writable."""


class UnsupportedModuleError(WeightspaceError):
    """A torch module whose weight symmetries ``WeightSpec.from_module`` cannot derive."""
