"""``make model``: a candidate default bundle from scratch = corpus synthesis (both
simulators) -> train -> PTQ and QAT -> calibration -> evaluate -> signed bundle + model card.

    python -m convert.make_model --out build/model [--per-class N] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import convert  # noqa: F401
from convert.architecture import load_checkpoint
from convert.biosim import biosim_corpus
from convert.calibrate import calibrate
from convert.corpus import read_corpus, synth_corpus
from convert.dataset import WindowBuilder, split_by_recording
from convert.evaluate import WORKERS, evaluate
from convert.model_card import model_card
from convert.packing import logits_model, pack
from convert.quantize import qat_finetune, representative, to_int8_tflite
from convert.synth import PARAMS
from convert.train import RECIPE, RECIPE_AUGMENT, RECIPE_BIOSIM_PER_CLASS, TrainConfig, log, train
from edge.console import Progress
from edge.spec import DEFAULT_DECISION, DEFAULT_SPEC, FrontEndSpec

ROOT = Path(__file__).resolve().parents[1]
DEV_KEY = ROOT / "keys" / "dev" / "nemg-dev.key"
SHIPPED_BUNDLE = ROOT / "models" / "nemg-default.nemg"
"""The shipped default. ``make model`` never writes it: it builds a candidate in its
``--out`` folder, and a candidate is promoted here by hand, only once the checks on data
it was not tuned to (``nemg bench real``, ``nemg bench crosssim``) say it is better —
an in-house figure alone never ships a model (docs/generalisation.md)."""


#: The int8 model must make the float model's decision this often (issue target).
AGREEMENT_TARGET = 0.99


def prefer_qat(ptq: dict[str, Any], qat: dict[str, Any]) -> bool:
    """QAT or PTQ for the shipped model: the one that keeps the float model's decisions
    (agreement ≥ AGREEMENT_TARGET) first, then the higher int8 macro-F1."""
    ok_p, ok_q = (r["agreement"] >= AGREEMENT_TARGET for r in (ptq, qat))
    if ok_p != ok_q:
        return ok_q
    return qat["macro_f1_int8"] > ptq["macro_f1_int8"]


CROSS_EPOCHS = 12
"""Epochs of each cross-simulator model (train on one simulator, test on the other): a
reduced recipe — the corpus as it is, augmented, no fresh patients — so ``make model``
stays within its time budget. It measures how far one simulator's lessons carry."""


def _corpus(d: Path, make, what: str, n: int, seed: int, resume: bool = False,
            **kw) -> None:
    if resume and (d / "manifest.json").is_file():
        m = json.loads((d / "manifest.json").read_text())
        if (m.get("per_class"), m.get("seed")) == (n, seed):
            log(f"[corpus] {what}: {d} kept (--resume)")
            return
    if d.exists():
        shutil.rmtree(d)
    log(f"[corpus] {what}: {n} × 12 recordings, seed {seed} -> {d}")
    make(d, n, seed, progress=Progress("synthesising", unit=" recordings").update, **kw)


def _split_both(items, biosim_items, seed: int):
    """Training and validation recordings of both simulators (split by recording)."""
    tr, va = split_by_recording(items, 0.2, seed)
    btr, bva = split_by_recording(biosim_items, 0.2, seed) if biosim_items else ([], [])
    return tr, va, btr, bva


def _trained(out_dir: Path, resume: bool, run) -> Path:
    """The checkpoint in ``out_dir``: kept with ``resume`` when its training finished,
    else trained by ``run()``."""
    ckpt = out_dir / "model.h5"
    if resume and ckpt.is_file() and (out_dir / "training.json").is_file():
        log(f"  {ckpt} kept (--resume)")
        return ckpt
    return run().checkpoint




def cross_simulator(out: Path, synth_train: Path, biosim_train: Path, test: dict, *,
                    epochs: int, seed: int, arch: str, width: float, pool: str,
                    builder, spec: FrontEndSpec, resume: bool = False) -> dict[str, Any]:
    """Train on one simulator only, test on the other's held-out corpus (and its own),
    each direction with the same reduced recipe; PTQ int8, calibrated on the training
    simulator's own validation recordings (the test simulator is never seen)."""
    res: dict[str, Any] = {"epochs": epochs, "recipe": "corpus + augmentation, PTQ"}
    for name, data, other in (("synth", synth_train, "biosim"),
                              ("biosim", biosim_train, "synth")):
        log(f"[cross] train on {name} only, up to {epochs} epochs")
        cfg = TrainConfig(arch=arch, epochs=epochs, seed=seed, width=width, pool=pool,
                          patience=max(3, epochs // 3))
        ckpt = _trained(out / f"cross-{name}", resume, lambda d=data, n=name, c=cfg: train(
            d, out / f"cross-{n}", c, spec, aug=RECIPE_AUGMENT))
        fm = load_checkpoint(ckpt)
        tr, va = split_by_recording(read_corpus(data), 0.2, seed)
        tr_w, va_w = builder.build(tr), builder.build(va)
        q = to_int8_tflite(fm, representative(tr_w, seed=seed))
        cal = calibrate(q, tr, va, va_w, spec)
        row = {}
        for t in (other, name):
            rep = evaluate(q, test[t][0], None, float_model=fm, robustness=False,
                           windows=test[t][1], workers=WORKERS, calibration=cal, spec=spec)
            row[f"test_{t}"] = _generalisation_row(rep)
        res[f"train_{name}"] = row
        log(f"  {name} -> {other}: macro-F1 {row[f'test_{other}']['macro_f1_int8']:.3f} "
            f"({name} -> {name}: {row[f'test_{name}']['macro_f1_int8']:.3f})")
    return res


def _generalisation_row(rep: dict[str, Any]) -> dict[str, Any]:
    """The figures of one evaluation the card's generalisation table shows."""
    return {"macro_f1_int8": rep["macro_f1_int8"], "ece_int8": rep["ece_int8"],
            "ece_int8_uncalibrated": rep["ece_int8_uncalibrated"],
            "confidently_wrong_share": rep["confidently_wrong_share"],
            "unfamiliar_share": rep["unfamiliar_share"],
            "recall": {k: round(v["recall"], 3) for k, v in rep["per_class_int8"].items()},
            "windows": rep["windows"]}


def make_default_model(out: Path, *, per_class: int, test_per_class: int, epochs: int,
                       qat_epochs: int, duration_s: float, arch: str, version: str,
                       bundle: Path, key: Path, seed: int = 0,
                       width: float = RECIPE.width, pool: str = RECIPE.pool,
                       test_duration_s: float = 6.0, docs: Path | None = None,
                       train_mixture_share: float | None = None,
                       fresh_share: float = RECIPE.fresh_share,
                       biosim_per_class: int = RECIPE_BIOSIM_PER_CLASS,
                       biosim_test_per_class: int = 20,
                       cross_epochs: int = CROSS_EPOCHS,
                       resume: bool = False) -> dict[str, Any]:
    """``resume``: keep the corpora and finished trainings already in ``out`` (same
    sizes and seeds) and redo every stage after them — the result is what a full run
    gives, since each stage is seeded."""
    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    # a resumed run redoes the later stages only: the card keeps the full run's time
    before = out / "summary.json"
    full_minutes = (json.loads(before.read_text()).get("minutes") if resume and before.is_file()
                    else None)
    spec = DEFAULT_SPEC  # what a new model trains on: every later stage reads it from here
    mel, win = spec.mel, spec.window
    train_dir, test_dir = out / "corpus-train", out / "corpus-test"
    bio_train_dir, bio_test_dir = out / "corpus-biosim-train", out / "corpus-biosim-test"
    train_seed, test_seed = 11, 22
    # The training corpus may over-represent discharges on a background (the hard case);
    # the test corpus keeps the synthesiser's own share.
    _corpus(train_dir, synth_corpus, "synth", per_class, train_seed, resume,
            duration_s=duration_s, mixture_share=train_mixture_share, workers=WORKERS)
    _corpus(test_dir, synth_corpus, "synth", test_per_class, test_seed, resume,
            duration_s=test_duration_s, workers=WORKERS)
    if biosim_per_class:
        _corpus(bio_train_dir, biosim_corpus, "biosim", biosim_per_class, train_seed, resume,
                duration_s=duration_s)
    _corpus(bio_test_dir, biosim_corpus, "biosim", biosim_test_per_class, test_seed, resume,
            duration_s=duration_s)
    log(f"[train] {arch}, up to {epochs} epochs")
    ckpt_dir = out / "checkpoint"
    also = [bio_train_dir] if biosim_per_class else []
    checkpoint = _trained(ckpt_dir, resume, lambda: train(
        train_dir, ckpt_dir, TrainConfig(arch=arch, epochs=epochs, seed=seed, width=width,
                                         pool=pool, fresh_share=fresh_share),
        spec, also=also, aug=RECIPE_AUGMENT))
    history = json.loads((ckpt_dir / "training.json").read_text())
    float_model = load_checkpoint(checkpoint)
    items = read_corpus(train_dir)
    bio_items = read_corpus(bio_train_dir) if biosim_per_class else []
    tr, va, btr, bva = _split_both(items, bio_items, seed)
    test_items, bio_test_items = read_corpus(test_dir), read_corpus(bio_test_dir)
    with WindowBuilder(mel, win, workers=WORKERS) as builder:
        calib, val = builder.build(tr + btr), builder.build(va + bva)
        # computed once, for every model evaluated
        test = {"synth": (test_items, builder.build(test_items)),
                "biosim": (bio_test_items, builder.build(bio_test_items))}

        def report_on(model, items, windows, twin, robustness=False, out_dir=None,
                      calibration=None):
            return evaluate(model, items, out_dir, float_model=twin, robustness=robustness,
                            windows=windows, workers=WORKERS, calibration=calibration,
                            spec=spec)

        log("[int8] post-training quantisation")
        ptq = to_int8_tflite(float_model, representative(calib, seed=seed))
        ptq_rep = report_on(ptq, test_items, test["synth"][1], float_model)
        # PTQ or QAT is chosen on the validation recordings (both simulators): the test
        # corpora only report
        ptq_val = report_on(ptq, va + bva, val, float_model)
        log(f"  PTQ: macro-F1 {ptq_rep['macro_f1_int8']:.3f}, agreement "
            f"{ptq_rep['agreement']:.3f} (validation {ptq_val['macro_f1_int8']:.3f}, "
            f"{ptq_val['agreement']:.3f})")
        log("[int8] quantisation-aware training")
        qat_f1 = float("nan")
        qat = qm = qat_val = None
        try:
            qm = qat_finetune(load_checkpoint(checkpoint), calib, val, epochs=qat_epochs,
                              seed=seed)
            qat = to_int8_tflite(qm, representative(calib, seed=seed))
            # agreement of the int8 model with its own float twin (QAT's fake-quant model)
            qat_rep = report_on(qat, test_items, test["synth"][1], qm)
            qat_val = report_on(qat, va + bva, val, qm)
            qat_f1 = qat_rep["macro_f1_int8"]
            log(f"  QAT: macro-F1 {qat_f1:.3f}, agreement {qat_rep['agreement']:.3f}"
                f" (validation {qat_val['macro_f1_int8']:.3f}, {qat_val['agreement']:.3f})")
        except Exception as exc:
            log(f"  QAT unavailable: {exc}")
        use_qat = qat_val is not None and prefer_qat(ptq_val, qat_val)
        chosen, method = (qat, "qat") if use_qat else (ptq, "ptq")
        # what the bundle carries, calibrated and evaluated as the box runs it: int8 logits
        chosen = logits_model(chosen)
        twin = qm if use_qat else float_model
        (out / "model-ptq.tflite").write_bytes(ptq)
        if qat is not None:
            (out / "model-qat.tflite").write_bytes(qat)
        log("[calibrate] temperature and familiarity on the validation recordings")
        cal = calibrate(chosen, tr + btr, va + bva, val, spec)
        log(f"[evaluate] {method.upper()} model on the held-out corpora (with robustness)")
        report = report_on(chosen, test_items, test["synth"][1], twin, robustness=True,
                           out_dir=out / "report", calibration=cal)
        bio_rep = report_on(chosen, bio_test_items, test["biosim"][1], twin, calibration=cal)
        report["held_out"] = {"synth": _generalisation_row(report),
                              "biosim": _generalisation_row(bio_rep)}
        log(f"  held-out synth {report['macro_f1_int8']:.3f}, held-out biosim "
            f"{bio_rep['macro_f1_int8']:.3f}")
        if cross_epochs and biosim_per_class:
            report["cross_simulator"] = cross_simulator(
                out, train_dir, bio_train_dir, test, epochs=cross_epochs, seed=seed,
                arch=arch, width=width, pool=pool, builder=builder, spec=spec,
                resume=resume)
    report["ptq_macro_f1_int8"] = ptq_rep["macro_f1_int8"]
    report["qat_macro_f1_int8"] = qat_f1
    (out / "report" / "report.json").write_text(json.dumps(report, indent=1))
    metrics = {k: report[k] for k in ("macro_f1_int8", "macro_f1_float", "agreement",
                                      "accuracy_int8", "ece_int8", "windows")}
    metrics.update(method=method, test_seed=test_seed, train_seed=train_seed,
                   macro_f1_int8_biosim=bio_rep["macro_f1_int8"])
    cross = report.get("cross_simulator")
    if cross:
        metrics.update(cross_synth_to_biosim=cross["train_synth"]["test_biosim"]["macro_f1_int8"],
                       cross_biosim_to_synth=cross["train_biosim"]["test_synth"]["macro_f1_int8"])
    log(f"[bundle] {bundle}")
    pack(bundle, model=chosen, key_path=key, name="nemg-default", version=version,
         spec=spec, metrics=metrics, checkpoint=checkpoint.read_bytes(),
         decision=DEFAULT_DECISION, development_key=True, calibration=cal,
         description="Default 12-class model trained on two simulators (development key)")
    meta = {"name": "nemg-default", "version": version, "arch": arch,
            "params": int(float_model.count_params()), "method": method,
            "minutes": full_minutes or (time.monotonic() - t0) / 60, "train_seed": train_seed,
            "test_seed": test_seed, "per_class": per_class, "test_per_class": test_per_class,
            "test_duration_s": test_duration_s, "pool": pool,
            "train_mixture_share": train_mixture_share, "fresh_share": fresh_share,
            "fresh_patients": history["fresh_patients"], "biosim_per_class": biosim_per_class,
            "biosim_test_per_class": biosim_test_per_class,
            "source_rate_share": RECIPE_AUGMENT.p_source_rate,
            "duration_s": duration_s, "ptq_f1": ptq_rep["macro_f1_int8"], "qat_f1": qat_f1,
            # the card states the threshold the bundle decides with (edge.spec's default)
            "uncertain_threshold": DEFAULT_DECISION.uncertain_threshold,
            "front_end": spec.describe()}
    docs = docs or ROOT / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "model-card.md").write_text(model_card(report, meta))
    (out / "model-card-meta.json").write_text(json.dumps(meta, indent=1))
    shutil.copy(out / "report" / "confusion.png", docs / "model-card-confusion.png")
    summary = {**metrics, "bundle": str(bundle), "bytes": len(chosen),
               "minutes": meta["minutes"], "params": meta["params"],
               "ptq_macro_f1_int8": ptq_rep["macro_f1_int8"], "qat_macro_f1_int8": qat_f1,
               "epochs_run": len(history["history"]), "best_epoch": history["best_epoch"],
               "seconds_per_epoch": float(np.mean([h["seconds"] for h in history["history"]])),
               "temperature": cal.temperature}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.make_model")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "model")
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--test-per-class", type=int, default=30)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--epochs", type=int, default=RECIPE.epochs)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--arch", default=RECIPE.arch, choices=["cnn", "cnn_gru"])
    ap.add_argument("--width", type=float, default=RECIPE.width, help="channel multiplier")
    ap.add_argument("--pool", default=RECIPE.pool, choices=["avg", "avg_max"],
                    help="cnn head: average, or average and maximum over the window")
    ap.add_argument("--train-mixture-share", type=float, default=0.4,
                    help="share of training discharge recordings over end-plate noise or a "
                         "voluntary unit (the test corpus keeps the synthesiser's "
                         f"{PARAMS['background']['mixture_share']:g})")
    ap.add_argument("--fresh-share", type=float, default=RECIPE.fresh_share,
                    help="share of each epoch's training recordings that are new synthetic "
                         "patients instead of corpus recordings")
    ap.add_argument("--biosim-per-class", type=int, default=RECIPE_BIOSIM_PER_CLASS,
                    help="training recordings per class of the biophysical simulator (0: "
                         "the template synthesiser only)")
    ap.add_argument("--biosim-test-per-class", type=int, default=20)
    ap.add_argument("--cross-epochs", type=int, default=CROSS_EPOCHS,
                    help="epochs of each cross-simulator model (0: skip that report)")
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--resume", action="store_true",
                    help="keep the corpora and finished trainings already in --out and redo "
                         "every later stage (same result as a full run)")
    ap.add_argument("--bundle", type=Path,
                    help="the candidate bundle (default: OUT/nemg-default.nemg; the shipped "
                         f"{SHIPPED_BUNDLE.relative_to(ROOT)} is never overwritten by default)")
    ap.add_argument("--key", type=Path, default=DEV_KEY)
    ap.add_argument("--docs", type=Path,
                    help="where the model card goes (default: OUT/docs)")
    a = ap.parse_args(argv)
    a.bundle = a.bundle or a.out / "nemg-default.nemg"
    a.docs = a.docs or a.out / "docs"
    from edge.console import filtered_stderr

    with filtered_stderr():  # TensorFlow's native start-up lines are not progress
        s = make_default_model(a.out, per_class=a.per_class, test_per_class=a.test_per_class,
                               epochs=a.epochs, qat_epochs=a.qat_epochs, duration_s=a.duration,
                               arch=a.arch, version=a.version, bundle=a.bundle, key=a.key,
                               width=a.width, pool=a.pool, docs=a.docs,
                               train_mixture_share=a.train_mixture_share,
                               fresh_share=a.fresh_share,
                               biosim_per_class=a.biosim_per_class,
                               biosim_test_per_class=a.biosim_test_per_class,
                               cross_epochs=a.cross_epochs, resume=a.resume)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
