"""Errors that ctglip raises for bad configs and bad data.

Each carries a message that names the file, the field and the fix; the command-line tools
print it as one line instead of a traceback.
"""


class CTGLIPError(Exception):
    """Base of the errors that a user can fix by changing a config or the data."""


class ConfigError(CTGLIPError, ValueError):
    """A config value is wrong: names the field and the fix."""


class UnknownTypeError(CTGLIPError, KeyError):
    """A ``type=`` in a config names nothing registered."""

    def __str__(self):  # KeyError quotes its message; show it plainly.
        return str(self.args[0]) if self.args else ''


class DataError(CTGLIPError, ValueError):
    """A case of a dataset is unreadable or inconsistent: names the case, the file and the fix."""


class CheckpointError(CTGLIPError, FileNotFoundError):
    """A checkpoint is missing, truncated or corrupt: names it and the newest other one."""


class NonFiniteLossError(CTGLIPError, FloatingPointError):
    """Training met a NaN or infinite loss or gradient: names the iteration, the term and the
    last good checkpoint."""
