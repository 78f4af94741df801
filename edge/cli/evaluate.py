"""``nemg evaluate MODEL --data DIR --out REPORT_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli.options import add_front_end_option, add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help=".tflite or .nemg")
    parser.add_argument("--data", type=Path, required=True, help="held-out corpus folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--checkpoint", type=Path,
                        help="float checkpoint, for float-vs-int8 agreement")
    add_front_end_option(parser, "a bare .tflite without --checkpoint: the front end it was "
                                 "trained on (a bundle bears its own)")
    parser.add_argument("--no-robustness", action="store_true",
                        help="skip accuracy vs SNR and gain")
    add_ray_option(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from convert.evaluate import evaluate_model

    rep = evaluate_model(args.model, args.data, args.out, args.checkpoint,
                         robustness=not args.no_robustness, front_end=args.front_end)
    keys = ("macro_f1_int8", "macro_f1_float", "agreement", "accuracy_int8", "ece_int8",
            "confidently_wrong_share", "unfamiliar_share",
            "model_bytes", "windows", "accuracy_by_background",
            "accuracy_by_discharge_snr")
    print(json.dumps({k: rep[k] for k in keys if k in rep} | {"report": str(args.out)}))
    return 0
