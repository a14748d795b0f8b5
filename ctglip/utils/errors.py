"""Errors that ctglip raises for bad configs and bad data.

Each carries a message that names the file, the field and the fix; the command-line tools
print it as one line instead of a traceback.
"""
import re

# torch re-raises an error of a DataLoader worker (or the pin-memory thread) in the main process
# as ``type(e)("Caught <Type> in DataLoader worker process N.\nOriginal Traceback ...")``.
_TORCH_WRAPPED = re.compile(r'Caught (\w+) (in [^\n]*?)\.\nOriginal (Traceback \(most recent call '
                            r'last\):\n.*)', re.S)


def unwrap_worker_message(text):
    """The original message of an error that torch re-raised from a DataLoader worker.

    Returns:
        tuple: ``(message, where, traceback)``; ``where`` (e.g. "in DataLoader worker process
        0") and ``traceback`` (the worker's) are None when ``text`` is not such a message.
    """
    match = _TORCH_WRAPPED.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return text, None, None
    name, where, worker_tb = match.groups()
    # The traceback ends with "<module>.<Type>: <message>"; the message may span lines.
    heads = list(re.finditer(rf'^(?:[\w.]+\.)?{re.escape(name)}: ', worker_tb, re.M))
    if not heads:
        return text, None, None
    return worker_tb[heads[-1].end():].rstrip('\n'), where, worker_tb


class CTGLIPError(Exception):
    """Base of the errors that a user can fix by changing a config or the data.

    Raised in a DataLoader worker, it reaches the main process with its own message (torch's
    "Caught ... in DataLoader worker process N. Original Traceback ..." wrapper is taken off);
    ``worker`` and ``worker_traceback`` keep where it came from, for debugging.
    """

    def __init__(self, *args):
        self.worker = self.worker_traceback = None
        if len(args) == 1:
            message, self.worker, self.worker_traceback = unwrap_worker_message(args[0])
            args = (message,)
        super().__init__(*args)


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
