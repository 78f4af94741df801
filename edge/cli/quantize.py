"""``nemg quantize``: a trained checkpoint -> full-int8 TFLite (PTQ or QAT)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder or .h5")
    parser.add_argument("--data", type=Path, required=True,
                        help="corpus for calibration (PTQ) or fine-tuning (QAT)")
    parser.add_argument("--out", type=Path, required=True, help=".tflite to write")
    parser.add_argument("--method", choices=["ptq", "qat"], default="ptq")
    parser.add_argument("--qat-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import json

    from convert.quantize import quantize_checkpoint

    info = quantize_checkpoint(args.checkpoint, args.data, args.out, args.method,
                               qat_epochs=args.qat_epochs, seed=args.seed)
    print(json.dumps(info))
    return 0
