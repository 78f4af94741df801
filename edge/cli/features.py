"""``nemg features FILE``: the box's int8 features of a raw int16 or .npy signal.

Reads a ``.npy`` array or raw little-endian int16 (``--raw``); full importers for
WAV/EDF/WFDB/CSV come with the corpus issue. Writes the int8 matrix as ``.npy``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.options import add_front_end_option


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="signal: .npy (int16, or float with --lsb) or raw")
    parser.add_argument("-o", "--out", type=Path, help="write the int8 features here (.npy)")
    parser.add_argument("--raw", action="store_true", help="file is raw little-endian int16")
    parser.add_argument("--lsb", type=float, default=None,
                        help="float input: value of one int16 LSB in the file's unit")
    add_front_end_option(parser, "whose features: a bundle (.nemg), checkpoint or JSON spec "
                                 "(default: the box's model, as the pipeline computes them)")
    parser.add_argument("--compare", action="store_true",
                        help="also report the error against the float64 reference (JSON)")


def load_signal(path: Path, raw: bool = False, lsb: float | None = None):
    """The signal as canonical int16 (clear errors for missing, truncated or NaN files)."""
    import numpy as np

    from edge.errors import InputError
    from edge.features import float_to_int16

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if raw:
            data = path.read_bytes()
            if len(data) % 2:
                raise InputError(f"{path}: truncated raw int16 file (odd byte count {len(data)})")
            x = np.frombuffer(data, dtype="<i2").astype(np.int16)
        else:
            x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy signal ({exc})") from None
    if x.dtype != np.int16:
        if lsb is None:
            raise InputError(f"{path}: dtype {x.dtype}; pass --lsb to convert to int16")
        try:
            x = float_to_int16(x, lsb)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"{path}: expected a non-empty 1-D signal, got shape {x.shape}")
    return x


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge.bundle import load_spec
    from edge.errors import InputError
    from edge.features import MelFrontEnd
    from edge.runtime import default_model_path

    spec = load_spec(args.front_end or default_model_path())
    x = load_signal(args.path, args.raw, args.lsb)
    fe = MelFrontEnd(spec.mel)
    try:
        feats = fe.process(x)
    except InputError as exc:
        raise InputError(f"{args.path}: {exc}") from None
    if args.out:
        np.save(args.out, feats)
    report = {"file": str(args.path), "front_end": spec.describe(),
              "samples": int(x.size), "frames": int(feats.shape[0]),
              "num_mels": int(feats.shape[1]), "table_sha256": fe.table_digest}
    if args.compare:
        from edge.mel_reference import compare_to_reference

        report.update(compare_to_reference(x, front_end=fe))
    print(json.dumps(report))
    return 0
