"""``nemg train``: train (or fine-tune) a classifier on a corpus folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli.options import add_front_end_option, add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    # make model's recipe: the one source of defaults
    from convert.train import RECIPE, RECIPE_AUGMENT

    parser.add_argument("--data", type=Path, required=True, help="corpus folder (labels.csv)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--arch", default=RECIPE.arch, choices=["cnn", "cnn_gru"])
    parser.add_argument("--width", type=float, default=RECIPE.width,
                        help="channel multiplier of every convolution (make model: "
                             f"{RECIPE.width:g})")
    parser.add_argument("--pool", default=RECIPE.pool, choices=["avg", "avg_max"],
                        help=f"cnn head: average, or average and maximum (make model: "
                             f"{RECIPE.pool})")
    parser.add_argument("--epochs", type=int, default=30,
                        help=f"upper bound (make model: {RECIPE.epochs})")
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--init-from", metavar="BUNDLE_OR_CHECKPOINT",
                        help="fine-tune this model (.nemg with checkpoint, or .h5)")
    parser.add_argument("--freeze", type=int, default=2,
                        help="with --init-from: convolution blocks kept frozen")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes computing augmented windows (same result for any)")
    add_ray_option(parser)  # the windows of every epoch built on a cluster
    add_front_end_option(parser, "the front end to train on: a bundle (.nemg), a checkpoint or a "
                                 "JSON spec with mel_config and window (default: "
                                 "edge.spec.DEFAULT_SPEC, as make model; a fine-tune keeps its "
                                 "model's)")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="DIR",
                        help="another corpus (e.g. 'nemg data synth --simulator bio', or real "
                             "recordings) whose training recordings join every epoch and "
                             "whose validation recordings join the validation set "
                             "(repeatable)")
    parser.add_argument("--source-rate-share", type=float,
                        default=RECIPE_AUGMENT.p_source_rate, metavar="SHARE",
                        help="augmentation: share of recordings read as if recorded at 4–16 "
                             "kHz (down and up through the box's resampler; default "
                             f"{RECIPE_AUGMENT.p_source_rate:g}, as make model)")
    parser.add_argument("--fresh-share", type=float, default=0.0, metavar="SHARE",
                        help="synthetic corpora: share of each epoch's training recordings "
                             "replaced by newly synthesised patients (make model: "
                             f"{RECIPE.fresh_share:g})")


def run(args: argparse.Namespace) -> int:
    import json

    from convert.train import TrainConfig, train
    from edge.errors import ConfigError

    if args.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    cfg = TrainConfig(arch=args.arch, width=args.width, pool=args.pool,
                      epochs=args.epochs, patience=args.patience,
                      batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                      augment=not args.no_augment, init_from=args.init_from,
                      freeze=args.freeze, workers=args.workers, fresh_share=args.fresh_share)
    if not 0.0 <= args.source_rate_share <= 1.0:
        raise ConfigError("--source-rate-share must be in 0..1")
    from dataclasses import replace

    from convert.train import RECIPE_AUGMENT

    aug = replace(RECIPE_AUGMENT, p_source_rate=args.source_rate_share)
    from edge.bundle import load_spec

    spec = load_spec(args.front_end) if args.front_end else None
    r = train(args.data, args.out, cfg, spec, also=args.also, aug=aug)
    print(json.dumps({"checkpoint": str(r.checkpoint), "best_epoch": r.best_epoch,
                      "best_val_accuracy": r.best_val_accuracy, "seconds": r.seconds}))
    return 0
