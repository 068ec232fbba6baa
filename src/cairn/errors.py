"""The errors a user can act on: shown as one line, without a traceback."""

from __future__ import annotations

from typing import ClassVar


class CairnError(Exception):
    """An error the user can act on; shown as 'Error: …' without a traceback."""

    exit_code: ClassVar[int] = 1


class NotFound(CairnError):
    """A memory, source or file that does not exist."""


class ConfigError(CairnError):
    """A bad value or unknown key in config.toml or the environment."""

    exit_code: ClassVar[int] = 2


class ExtensionUnavailable(CairnError):
    """sqlite-vec (or another extension) could not be loaded."""


class ModelMissing(CairnError):
    """An embedding or language model that is not installed; the message names the fix."""


class BadInput(CairnError):
    """A file or value cairn cannot read; the message gives the reason."""


class StoreBusy(CairnError):
    """The store stayed locked by another writer past every retry."""
