"""Training: seeded, split by recording, augmented every epoch, early stopping, the best
checkpoint kept; fine-tuning from a bundle or checkpoint."""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import convert  # noqa: F401
from convert.augment import AugmentConfig
from convert.corpus import CorpusItem, read_corpus, recording_seed
from convert.dataset import FreshRecording, WindowBuilder, background_items, split_by_recording
from edge.bundle import load_spec
from edge.errors import ConfigError, InputError
from edge.labels import LABELS
from edge.spec import DEFAULT_SPEC, FrontEndSpec, MelConfig, WindowConfig


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained."""

    arch: str = "cnn"
    """'cnn' or 'cnn_gru'."""
    epochs: int = 40
    """Upper bound; early stopping may end sooner. The learning rate follows a cosine
    from ``learning_rate`` to 5 % of it over these epochs."""
    patience: int = 10
    """Epochs without validation improvement before stopping."""
    batch_size: int = 64
    learning_rate: float = 2e-3
    dropout: float = 0.3
    width: float = 1.0
    """Channel multiplier of every convolution (1.0: ~48 k parameters)."""
    pool: str = "avg"
    """'cnn' head: average over time and frequency, or average and maximum ('avg_max')."""
    val_fraction: float = 0.2
    """Share of recordings (not windows) held out for validation."""
    augment: bool = True
    """Fresh seeded augmentation of every training recording each epoch."""
    seed: int = 0
    init_from: str | None = None
    """Bundle (.nemg) or checkpoint (.h5) to fine-tune."""
    freeze: int = 2
    """When fine-tuning: convolution blocks kept frozen (the early layers)."""
    fine_tune_lr: float = 5e-4
    workers: int = 2
    """Processes computing the augmented windows each epoch (the fixed-point front end,
    not the network, dominates an epoch). Results do not depend on it."""
    fresh_share: float = 0.0
    """Synthetic corpora only: this share of each class's training recordings is replaced,
    every epoch, by newly synthesised patients (same generator, seed and settings as the
    corpus, recording indices the corpus does not hold), the rest drawn from the corpus.
    A model trained on a fixed set of patients fits their hard cases and not the next
    patient's; fresh patients cost a synthesis (about as much as the front end) each.
    Needs ``augment`` (they are part of each epoch's fresh windows)."""


RECIPE = TrainConfig(arch="cnn", epochs=46, width=1.0, pool="avg_max", fresh_share=1.0)
"""How ``make model`` trains nemg-default: the one source of its defaults, and of the
model-changing defaults of ``nemg train`` (arch, width, pool), so that the shipped
architecture is what ``nemg train`` builds without options."""

RECIPE_AUGMENT = AugmentConfig(p_source_rate=0.3)
"""``make model``'s augmentation (and ``nemg train``'s default): besides AugmentConfig's
own, 30 % of recordings read as the box reads a file recorded at 4–16 kHz (domain
randomisation: on 1.4.0, recordings at 10 kHz fell to 0.67 window accuracy)."""

RECIPE_BIOSIM_PER_CLASS = 40
"""Recordings per class of the biophysical simulator (``convert.biosim``) that ``make
model`` trains on beside the template synthesiser's patients (0: synthesiser only)."""


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    best_val_accuracy: float = 0.0
    seconds: float = 0.0
    fresh_patients: int = 0
    """New synthetic patients trained on over the run (``TrainConfig.fresh_share``)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def set_seeds(seed: int) -> None:
    import random

    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def class_weights(y: np.ndarray) -> dict[int, float]:
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    present = counts > 0
    w = np.zeros_like(counts)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(v) for i, v in enumerate(w)}


def _checkpoint_from_bundle(path: Path, workdir: Path) -> Path:
    from edge.bundle import Bundle

    b = Bundle.read(path)
    if "checkpoint.h5" not in b.members:
        raise InputError(f"{path}: bundle has no float checkpoint to fine-tune from")
    from edge.bundle import sha256

    listed = b.manifest.get("members", {})
    if sha256(b.members["checkpoint.h5"]) != listed.get("checkpoint.h5"):
        raise InputError(f"{path}: checkpoint.h5 does not match the manifest")
    out = workdir / "init_checkpoint.h5"
    out.write_bytes(b.members["checkpoint.h5"])
    return out


def initial_model(config: TrainConfig, frames: int, mels: int, workdir: Path):
    from convert.architecture import build, load_checkpoint

    if not config.init_from:
        return build(config.arch, frames, mels, len(LABELS), seed=config.seed,
                     dropout=config.dropout, width=config.width, pool=config.pool)
    src = Path(config.init_from)
    if not src.exists():
        raise InputError(f"--init-from {src}: no such file")
    ckpt = _checkpoint_from_bundle(src, workdir) if src.suffix == ".nemg" else src
    if ckpt.is_dir():
        ckpt = ckpt / "model.h5"
    model = load_checkpoint(ckpt)
    shape = tuple(model.input_shape[1:3])
    if shape != (frames, mels):
        raise ConfigError(f"--init-from model takes {shape} windows, the data gives "
                          f"{(frames, mels)}")
    for layer in model.layers:  # freeze the first `freeze` conv blocks (and their BN)
        if any(layer.name == f"{kind}{i}" for kind in ("conv", "bn")
               for i in range(config.freeze)):
            layer.trainable = False
    return model


class EpochRecordings:
    """Which recordings each training epoch uses: the corpus's training recordings, or
    with ``fresh_share`` > 0 a seeded subset of them plus new synthetic patients; and
    ``also`` (another simulator's or real recordings) in every epoch as they are."""

    def __init__(self, items: list[CorpusItem], data_dir: Path, config: TrainConfig,
                 also: list[CorpusItem] | None = None) -> None:
        self.items, self.config = items, config
        self.also = also or []
        self.manifest: dict = {}
        self.groups = [[i for i in items if i.label == label] for label in LABELS]
        self.fresh_per_epoch = sum(round(len(g) * config.fresh_share) for g in self.groups)
        """New patients in every epoch (0 without ``fresh_share``)."""
        if config.fresh_share:
            if not 0.0 < config.fresh_share <= 1.0:
                raise ConfigError(f"fresh share must be in 0..1 (got {config.fresh_share})")
            path = data_dir / "manifest.json"
            m = json.loads(path.read_text()) if path.is_file() else {}
            if m.get("kind") != "nemg-synthetic-corpus":
                raise ConfigError(f"{data_dir}: fresh patients need a synthetic corpus "
                                  "(nemg data synth); this one has no synthesis manifest")
            self.manifest = m

    def __call__(self, epoch: int) -> list[CorpusItem | FreshRecording]:
        share = self.config.fresh_share
        if not share:
            return self.items + self.also if self.also else self.items
        m = self.manifest
        rng = np.random.default_rng([self.config.seed, epoch, 0xF5E5])
        out: list[CorpusItem | FreshRecording] = []
        overrides = tuple(sorted((m.get("patient_overrides") or {}).items()))
        for c, (label, group) in enumerate(zip(LABELS, self.groups, strict=True)):
            k = round(len(group) * share)
            keep = np.sort(rng.choice(len(group), len(group) - k, replace=False))
            out += [group[j] for j in keep]
            # indices past the corpus's own: patients no corpus recording (nor the
            # validation split) holds, new every epoch
            first = int(m["per_class"]) + epoch * k
            out += [FreshRecording(label, tuple(recording_seed(int(m["seed"]), label, first + j)),
                                   float(m["duration_s"]), float(m["uv_per_lsb"]),
                                   m.get("mixture_share"), overrides,
                                   seed=-(1 + (first + j) * len(LABELS) + c))
                    for j in range(k)]
        return out + self.also


def train(data_dir: Path, out_dir: Path, config: TrainConfig,
          spec: FrontEndSpec | None = None, items: list[CorpusItem] | None = None,
          also: list[Path] | None = None, aug: AugmentConfig | None = None) -> TrainResult:
    """``spec``: the front end to train on (default :data:`edge.spec.DEFAULT_SPEC`; a
    fine-tune keeps its bundle's, and refuses another). ``also``: more corpus folders
    (another simulator's, real recordings), split by recording like the main one; their
    training recordings join every epoch as they are and their validation recordings join
    the validation set (so the best checkpoint is chosen on both)."""
    t_start = time.monotonic()
    spec = _spec_for(config, spec)
    mel, win = spec.mel, spec.window
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seeds(config.seed)
    items = items if items is not None else read_corpus(data_dir)
    train_items, val_items = split_by_recording(items, config.val_fraction, config.seed)
    if not train_items or not val_items:
        raise InputError(f"{data_dir}: too few recordings to hold some out for validation "
                         "(the split is by recording: at least one class needs 2 or more; "
                         f"here {len(items)} recordings of {len({i.label for i in items})} "
                         "classes)")
    also_train: list[CorpusItem] = []
    for d in also or []:
        a_train, a_val = split_by_recording(read_corpus(d), config.val_fraction, config.seed)
        also_train += a_train
        val_items = val_items + a_val
        log(f"also {d}: {len(a_train)} training recordings, {len(a_val)} validation")
    log(f"train: {len(train_items) + len(also_train)} recordings, validation: "
        f"{len(val_items)} (split by recording, seed {config.seed})")
    epochs = EpochRecordings(train_items, data_dir, config, also_train)
    builder = WindowBuilder(mel, win, aug=aug, background_items=background_items(train_items),
                            workers=config.workers)
    try:
        return _train(config, mel, win, epochs, val_items, builder, out_dir, t_start)
    finally:
        builder.close()


def _spec_for(config: TrainConfig, spec: FrontEndSpec | None) -> FrontEndSpec:
    """The front end of a run: a fine-tune's is its model's (a bundle or a checkpoint
    with its training.json), which another ``spec`` may not replace."""
    src = Path(config.init_from) if config.init_from else None
    own = None
    if src is not None and src.exists() and (src.suffix == ".nemg" or (
            (src if src.is_dir() else src.parent) / "training.json").is_file()):
        own = load_spec(src)
    if own is not None and spec is not None and spec != own:
        raise ConfigError(f"--init-from {src} was trained on another front end than "
                          "--front-end gives: a fine-tune keeps its model's features")
    return own or spec or DEFAULT_SPEC


def _train(config: TrainConfig, mel: MelConfig, win: WindowConfig,
           epochs: EpochRecordings, val_items: list[CorpusItem], builder: WindowBuilder,
           out_dir: Path, t_start: float) -> TrainResult:
    import tf_keras as keras

    val = builder.build(val_items)
    train_items = epochs.items + epochs.also
    clean = None if config.augment else builder.build(epochs(0))
    model = initial_model(config, win.frames, mel.num_mels, out_dir)
    lr = config.fine_tune_lr if config.init_from else config.learning_rate
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    ckpt = out_dir / "model.h5"
    result = TrainResult(ckpt)
    wait = 0
    xv, yv = val.float_input(), val.y

    def epoch_windows(epoch: int):
        return builder.submit(epochs(epoch), augment_seed=config.seed * 1000 + epoch)

    upcoming = epoch_windows(0) if config.augment else None
    for epoch in range(config.epochs):
        t0 = time.monotonic()
        cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / max(config.epochs, 1)))
        keras.backend.set_value(model.optimizer.learning_rate, lr * cosine)
        if upcoming is not None:  # every transform has p < 1: many windows stay near-clean
            data = upcoming()
            # the workers compute the next epoch's windows while this one trains
            upcoming = epoch_windows(epoch + 1) if epoch + 1 < config.epochs else None
        else:
            data = clean
        h = model.fit(data.float_input(), data.y, batch_size=config.batch_size, epochs=1,
                      verbose=0, shuffle=True, class_weight=class_weights(data.y),
                      validation_data=(xv, yv))
        row = {k: float(v[0]) for k, v in h.history.items()}
        row.update(epoch=epoch + 1, windows=len(data), seconds=time.monotonic() - t0)
        result.history.append(row)
        better = row["val_loss"] < result.best_val_loss - 1e-4
        if better:
            result.best_val_loss, result.best_epoch = row["val_loss"], epoch + 1
            result.best_val_accuracy = row["val_accuracy"]
            with warnings.catch_warnings():  # HDF5 is what tfmot and our bundles use
                warnings.simplefilter("ignore", UserWarning)
                model.save(ckpt, include_optimizer=False)
            wait = 0
        else:
            wait += 1
        row["lr"] = lr * cosine
        log(f"  epoch {epoch + 1:>2}/{config.epochs}: loss {row['loss']:.3f} "
            f"acc {row['accuracy']:.3f} | val loss {row['val_loss']:.3f} "
            f"acc {row['val_accuracy']:.3f} {'*' if better else ' '} "
            f"({row['seconds']:.0f} s, {len(data)} windows)")
        if wait >= config.patience:
            log(f"  early stop: no improvement for {config.patience} epochs")
            break
    result.seconds = time.monotonic() - t_start
    result.fresh_patients = len(result.history) * epochs.fresh_per_epoch if config.augment else 0
    (out_dir / "training.json").write_text(json.dumps({
        "config": asdict(config), **FrontEndSpec(mel, win).to_manifest(),
        "labels": list(LABELS), "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss, "best_val_accuracy": result.best_val_accuracy,
        "seconds": result.seconds, "fresh_patients": result.fresh_patients,
        "history": result.history,
        "train_recordings": len(train_items), "val_recordings": len(val_items),
    }, indent=1))
    log(f"best epoch {result.best_epoch}: val acc {result.best_val_accuracy:.3f} -> {ckpt}")
    return result
