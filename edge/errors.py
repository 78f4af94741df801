"""The error types, under the name the box and the workstation use (they live in
:mod:`nemg_common.errors`, below every layer, so the wire layer can raise them too)."""

from nemg_common.errors import (  # noqa: F401
    ConfigError,
    DeviceError,
    InputError,
    IntegrityError,
    MissingExtraError,
    NemgError,
)
