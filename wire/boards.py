"""Board profiles: ``boards/*.toml``, one per front end or host. Data, not code.

Every file is validated on load (unknown keys, wrong types, impossible values) and any
problem is a :class:`~edge.errors.ConfigError` naming the file and the key. The folder is
``$NEMG_BOARDS_DIR`` or the ``boards/`` folder of the source tree.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nemg_common.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - JetPack 6 ships Python 3.10
    import tomli as tomllib

TRANSPORTS = ("usb-cdc", "uart")


def boards_dir() -> Path:
    env = os.environ.get("NEMG_BOARDS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "boards"


@dataclass(frozen=True)
class FrontEndProfile:
    """A serial EMG front end."""

    name: str
    """Profile name (the file's stem), e.g. 'nemg-fe1'."""
    description: str
    """One line for ``nemg boards``."""
    channels: int
    """Channels the device has (channel 0 is streamed)."""
    adc_bits: int
    """16 or 24: bytes per sample on the wire are adc_bits / 8."""
    sample_rate_hz: int
    """Samples per second."""
    uv_per_lsb: float
    """Microvolts per LSB of the ADC value."""
    device_id: int
    """Serial number the virtual front end reports."""
    transport: str
    """'usb-cdc' or 'uart'."""
    baudrate: int
    """UART baud rate (ignored by USB CDC)."""
    samples_per_frame: int
    """Samples per SAMPLES frame."""

    @property
    def bytes_per_sample(self) -> int:
        return self.adc_bits // 8

    @property
    def nv_per_lsb(self) -> int:
        return round(self.uv_per_lsb * 1000)

    @property
    def wire_bytes_per_second(self) -> float:
        from wire.protocol import OVERHEAD, SAMPLES_HEADER

        frame = OVERHEAD + SAMPLES_HEADER.size + self.samples_per_frame * self.bytes_per_sample
        return frame * self.sample_rate_hz / self.samples_per_frame


@dataclass(frozen=True)
class HostProfile:
    """A box the runtime runs on."""

    name: str
    """Profile name, e.g. 'rpi4'."""
    description: str
    """One line for ``nemg boards``."""
    threads: int
    """Interpreter threads."""
    store_root: str
    """Model store root."""
    log_dir: str
    """Event log folder."""
    default_port: str
    """Serial port of the front end when none is given."""


_SCHEMA: dict[str, dict[str, dict[str, type | tuple[type, ...]]]] = {
    "frontend": {
        "board": {"name": str, "kind": str, "description": str},
        "frontend": {"channels": int, "adc_bits": int, "sample_rate_hz": int,
                     "uv_per_lsb": (int, float), "device_id": int},
        "link": {"transport": str, "baudrate": int, "samples_per_frame": int},
    },
    "host": {
        "board": {"name": str, "kind": str, "description": str},
        "host": {"threads": int, "store_root": str, "log_dir": str, "default_port": str},
    },
}


def _check_schema(path: Path, data: dict[str, Any], kind: str) -> None:
    schema = _SCHEMA[kind]
    for section in data:
        if section not in schema:
            raise ConfigError(f"{path.name}: unknown section [{section}]")
    for section, keys in schema.items():
        table = data.get(section)
        if not isinstance(table, dict):
            raise ConfigError(f"{path.name}: missing section [{section}]")
        for key in table:
            if key not in keys:
                raise ConfigError(f"{path.name}: unknown key {section}.{key}")
        for key, typ in keys.items():
            if key not in table:
                raise ConfigError(f"{path.name}: missing key {section}.{key}")
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, typ):
                want = typ.__name__ if isinstance(typ, type) else "number"
                raise ConfigError(f"{path.name}: {section}.{key} must be a {want}, "
                                  f"got {value!r}")


def _range(path: Path, key: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ConfigError(f"{path.name}: {key} = {value} is outside {lo}..{hi}")


def load_board(path: Path) -> FrontEndProfile | HostProfile:
    """Parse and validate one profile file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: not valid TOML ({exc})") from None
    kind = data.get("board", {}).get("kind") if isinstance(data.get("board"), dict) else None
    if kind not in _SCHEMA:
        raise ConfigError(f"{path.name}: board.kind must be 'frontend' or 'host', got {kind!r}")
    _check_schema(path, data, kind)
    b = data["board"]
    if b["name"] != path.stem:
        raise ConfigError(f"{path.name}: board.name {b['name']!r} must match the file name")
    if kind == "host":
        h = data["host"]
        _range(path, "host.threads", h["threads"], 1, 64)
        return HostProfile(b["name"], b["description"], **h)
    f, link = data["frontend"], data["link"]
    if f["adc_bits"] not in (16, 24):
        raise ConfigError(f"{path.name}: frontend.adc_bits must be 16 or 24, got {f['adc_bits']}")
    _range(path, "frontend.channels", f["channels"], 1, 32)
    _range(path, "frontend.sample_rate_hz", f["sample_rate_hz"], 1000, 100_000)
    _range(path, "frontend.uv_per_lsb", f["uv_per_lsb"], 1e-4, 100.0)
    if link["transport"] not in TRANSPORTS:
        raise ConfigError(f"{path.name}: link.transport must be one of {', '.join(TRANSPORTS)}")
    _range(path, "link.baudrate", link["baudrate"], 9600, 20_000_000)
    from wire.protocol import max_samples_per_frame

    _range(path, "link.samples_per_frame", link["samples_per_frame"], 1,
           max_samples_per_frame(f["adc_bits"] // 8))
    profile = FrontEndProfile(
        name=b["name"], description=b["description"], channels=f["channels"],
        adc_bits=f["adc_bits"], sample_rate_hz=f["sample_rate_hz"],
        uv_per_lsb=float(f["uv_per_lsb"]), device_id=f["device_id"],
        transport=link["transport"], baudrate=link["baudrate"],
        samples_per_frame=link["samples_per_frame"])
    if profile.transport == "uart":
        need = profile.wire_bytes_per_second * 10  # 8N1: 10 bits per byte
        if need > 0.8 * profile.baudrate:
            raise ConfigError(f"{path.name}: {need:.0f} baud needed but link.baudrate is "
                              f"{profile.baudrate} (keep 20 % headroom)")
    return profile


def all_boards(directory: Path | None = None) -> dict[str, FrontEndProfile | HostProfile]:
    d = directory or boards_dir()
    if not d.is_dir():
        raise ConfigError(f"board folder {d} not found (set NEMG_BOARDS_DIR)")
    return {p.stem: load_board(p) for p in sorted(d.glob("*.toml"))}


def get_board(name: str, directory: Path | None = None) -> FrontEndProfile | HostProfile:
    d = directory or boards_dir()
    path = Path(name) if name.endswith(".toml") else d / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(d.glob("*.toml"))) if d.is_dir() else "none"
        raise ConfigError(f"unknown board {name!r} (known: {known})")
    return load_board(path)


def get_frontend(name: str, directory: Path | None = None) -> FrontEndProfile:
    board = get_board(name, directory)
    if not isinstance(board, FrontEndProfile):
        raise ConfigError(f"board {name!r} is a host profile, not a front end")
    return board


def describe(board: FrontEndProfile | HostProfile) -> dict[str, Any]:
    d = {f.name: getattr(board, f.name) for f in fields(board)}
    d["kind"] = "frontend" if isinstance(board, FrontEndProfile) else "host"
    return d
