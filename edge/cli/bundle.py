"""``nemg bundle pack|verify|inspect``: signed model bundles."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edge.cli.options import add_front_end_option


def default_trusted() -> Path:
    env = os.environ.get("NEMG_TRUSTED_KEYS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "keys" / "trusted"


def configure(parser: argparse.ArgumentParser) -> None:
    from edge.bundle import DEFAULT_BOARDS
    from edge.spec import DEFAULT_DECISION

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("pack", help="sign a model into a bundle (workstation)")
    p.add_argument("--model", type=Path, required=True, help="int8 .tflite")
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, help="float .h5 to include for fine-tuning")
    add_front_end_option(p, "the front end the model was trained on (default: the training.json "
                            "beside --checkpoint)")
    p.add_argument("--metrics", type=Path, help="evaluation report.json to include")
    p.add_argument("--boards", default=",".join(DEFAULT_BOARDS),
                   help="comma-separated compatible boards")
    p.add_argument("--uncertain-threshold", type=float, default=None, metavar="P",
                   help="top probability below which a window is 'uncertain' (default "
                        f"{DEFAULT_DECISION.uncertain_threshold}, edge.spec's)")
    p.add_argument("--smoothing-windows", type=int, default=None, metavar="N",
                   help="windows of posterior smoothing events follow (default "
                        f"{DEFAULT_DECISION.smoothing_windows}, edge.spec's)")
    p.add_argument("--dev", action="store_true", help="mark as signed with a development key")
    c = sub.add_parser("calibrate", help="refit a bundle's temperature and familiarity check "
                                         "on validation recordings of both simulators "
                                         "(workstation; the model is unchanged)")
    c.add_argument("bundle", type=Path)
    c.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    c.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH of the new bundle")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--per-class", type=int, default=None,
                   help="validation recordings per class and simulator (default 20)")
    v = sub.add_parser("verify", help="check signature, hashes and (optionally) golden vectors")
    v.add_argument("bundle", type=Path)
    v.add_argument("--trusted", type=Path,
                   help=f"trusted keys folder (default {default_trusted()})")
    v.add_argument("--self-test", action="store_true", help="run the golden vectors too")
    i = sub.add_parser("inspect", help="print the manifest (unverified)")
    i.add_argument("bundle", type=Path)


def run(args: argparse.Namespace) -> int:
    from edge.bundle import Bundle, TrustStore
    from edge.errors import InputError

    if args.action == "pack":
        from convert.packing import pack

        if not args.model.is_file():
            raise InputError(f"{args.model}: no such file")
        metrics = {}
        if args.metrics:
            rep = json.loads(args.metrics.read_text())
            metrics = {k: rep[k] for k in ("macro_f1_int8", "macro_f1_float", "agreement",
                                           "accuracy_int8", "ece_int8", "windows") if k in rep}
        from dataclasses import replace

        from edge.bundle import load_spec
        from edge.spec import DEFAULT_DECISION

        src = args.front_end or args.checkpoint
        if src is None:
            raise InputError("say which front end the model was trained on: --front-end "
                             "BUNDLE_OR_SPEC, or --checkpoint with its training.json")
        given = {k: v for k, v in (("uncertain_threshold", args.uncertain_threshold),
                                   ("smoothing_windows", args.smoothing_windows))
                 if v is not None}
        m = pack(args.out, model=args.model.read_bytes(), key_path=args.key, name=args.name,
                 version=args.version, metrics=metrics, spec=load_spec(src),
                 checkpoint=args.checkpoint.read_bytes() if args.checkpoint else None,
                 boards=tuple(b.strip() for b in args.boards.split(",")),
                 decision=replace(DEFAULT_DECISION, **given), development_key=args.dev)
        print(json.dumps({"bundle": str(args.out), "name": m["name"], "version": m["version"],
                          "key_id": m["key_id"]}))
        return 0
    if args.action == "calibrate":
        from convert.recalibrate import PER_CLASS, recalibrate

        if not args.bundle.is_file():
            raise InputError(f"{args.bundle}: no such file")
        print(json.dumps(recalibrate(args.bundle, args.out, key_path=args.key,
                                     version=args.version,
                                     per_class=args.per_class or PER_CLASS)))
        return 0
    b = Bundle.read(args.bundle)
    if args.action == "inspect":
        shown = {**b.manifest, "member_bytes": {n: len(d) for n, d in b.members.items()}}
        print(json.dumps(shown, indent=1))
        return 0
    m = b.verify(TrustStore.from_dir(args.trusted or default_trusted()))
    out = {"bundle": str(args.bundle), "ok": True, "name": m["name"], "version": m["version"],
           "model_sha256": b.sha256, "development_key": m.get("development_key", False)}
    if args.self_test:
        from edge.pipeline import check_decision_golden

        out["self_test"] = b.self_test()
        out["decision_self_test"] = check_decision_golden(b)
    print(json.dumps(out))
    return 0
