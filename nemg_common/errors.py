"""Errors a user can act on.

Every error that reaches the CLI as a :class:`NemgError` is printed as one line
(``nemg: error: ...``) and turned into a non-zero exit status; anything else is a bug.
"""

from __future__ import annotations


class NemgError(Exception):
    """Base class: a problem with input, configuration or hardware, not a bug."""

    exit_code: int = 2


class InputError(NemgError, ValueError):
    """Bad data: wrong dtype, NaN, empty, truncated or mislabelled input."""


class ConfigError(NemgError, ValueError):
    """An invalid configuration value, board profile or command-line combination."""


class DeviceError(NemgError):
    """The front end or serial link failed (unplugged, busy, not answering)."""

    exit_code = 3


class IntegrityError(NemgError):
    """A signature, hash or golden-vector check failed: the data must not be trusted."""

    exit_code = 4


class MissingExtraError(NemgError):
    """A command needs an optional extra that is not installed."""

    def __init__(self, extra: str, what: str, missing: str) -> None:
        super().__init__(
            f"{what} needs the '{extra}' extra ({missing} is not installed): "
            f"pip install 'nemg-edge[{extra}]'"
        )
