"""Evaluation report: per-class precision / recall / F1, macro-F1, confusion matrix (PNG and
JSON), float vs int8 agreement, calibration (ECE), accuracy vs SNR and vs gain, and the
accuracy on pathological recordings by what the discharge sits on (nothing, end-plate
noise, a voluntary unit: a patient who is not fully at rest).

The int8 model runs through ``edge.classifier.Classifier`` — the box's own interpreter path,
under the arithmetic the bundle names (:mod:`edge.arithmetic`; by default the one
:func:`convert.packing.pack` ships: the graph cut before its SOFTMAX on TFLite's reference
kernels, the softmax table with the temperature inside) — on features from the box's own
front end, and every probability comes from ``Classifier.calibrated_probabilities``, the
box's one path. :func:`evaluate_model` is ``nemg evaluate``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

import convert  # noqa: F401
from convert.corpus import CorpusItem, read_corpus
from convert.dataset import (
    MIXTURE_LABELS,
    Condition,
    WindowBuilder,
    WindowSet,
    background_of,
    build_windows,
)
from convert.packing import logits_model, packing_arithmetic
from convert.train import TrainConfig
from edge.arithmetic import Arithmetic, TableSoftmax, exp_table
from edge.bundle import Bundle, load_spec
from edge.calibration import Calibration
from edge.classifier import Classifier
from edge.errors import InputError
from edge.labels import LABELS
from edge.spec import FrontEndSpec

SNR_DB = (30.0, 20.0, 10.0, 5.0, 0.0)
CONFIDENT = 0.8
"""A wrong answer with a top probability at least this high is "confidently wrong"."""
GAIN_DB = (-20.0, -10.0, 0.0, 10.0, 20.0)
WORKERS = TrainConfig.workers
"""Processes computing windows outside training too (calibration, validation, test and
every robustness condition): the front end, not the network, dominates those stages."""


def int8_scores(clf: Classifier, ws: WindowSet) -> np.ndarray:
    return np.stack([clf.invoke_int8(w) for w in ws.x]) if len(ws) else np.zeros((0, 0))


def int8_probabilities(clf: Classifier, scores: np.ndarray,
                       calibration: Calibration | None = None) -> np.ndarray:
    """What the box decides on for int8 outputs ``scores`` [windows, classes] under the
    classifier's arithmetic and ``calibration`` (the identity: its temperature only if the
    arithmetic's table holds it)."""
    return clf.calibrated_probabilities(scores, calibration or Calibration())


def uncalibrated_probabilities(clf: Classifier, scores: np.ndarray) -> np.ndarray:
    """The probabilities at temperature 1 (the calibration's reference figure): the table
    softmax of T = 1 for int8 logits, the dequantised softmax for a legacy graph."""
    if not clf.arithmetic.logits:
        return int8_probabilities(clf, scores)
    softmax = TableSoftmax(exp_table(clf.output_quantization[0], 1.0))
    return np.stack([softmax(s) for s in scores])


def confidently_wrong(probs: np.ndarray, y: np.ndarray,
                      unfamiliar: np.ndarray | None = None) -> float:
    """Share of windows answered wrongly with a top probability ≥ ``CONFIDENT`` (an
    unfamiliar window is answered 'uncertain', so it is never confidently wrong)."""
    if not len(y):
        return 0.0
    bad = (probs.argmax(axis=1) != y) & (probs.max(axis=1) >= CONFIDENT)
    if unfamiliar is not None:
        bad &= ~unfamiliar
    return float(bad.mean())


def per_class(y: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for i, lab in enumerate(LABELS):
        tp = int(((pred == i) & (y == i)).sum())
        fp = int(((pred == i) & (y != i)).sum())
        fn = int(((pred != i) & (y == i)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[lab] = {"precision": p, "recall": r, "f1": f1, "support": int((y == i).sum())}
    return out


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    pc = per_class(y, pred)
    present = [v["f1"] for v in pc.values() if v["support"] > 0]
    return float(np.mean(present)) if present else 0.0


def confusion(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    m = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for a, b in itertools.pairwise(edges):
        m = (conf > a) & (conf <= b)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def _per_window(items: list[CorpusItem], ws: WindowSet, of) -> list:
    """``of(item)`` for the recording each window came from."""
    value = {item.seed: of(item) for item in items}
    return [value.get(int(g)) for g in ws.group]


def _accuracy_where(ws: WindowSet, pred: np.ndarray, masks) -> dict[str, dict[str, float]]:
    """Accuracy and window count per named mask (empty masks left out)."""
    return {k: {"accuracy": float((pred[m] == ws.y[m]).mean()), "windows": int(m.sum())}
            for k, m in masks if m.any()}


def accuracy_by_background(items: list[CorpusItem], ws: WindowSet,
                           pred: np.ndarray) -> dict[str, dict[str, float]]:
    kind = np.array(_per_window(items, ws, background_of), dtype=object)
    return _accuracy_where(ws, pred, ((k, kind == k) for k in ("none", *MIXTURE_LABELS)))


#: Bins of discharge peak ÷ background RMS (lower edges). The synthesiser labels nothing
#: below 4×: at 4–5× a discharge peaks no higher than white noise's own largest peaks in
#: one 2 s window (≈ 4.3 σ over 40 000 samples), so that bin is the detection limit.
DISCHARGE_SNR_BINS = (4.0, 5.0, 8.0, 12.0)


def accuracy_by_discharge_snr(items: list[CorpusItem], ws: WindowSet,
                              pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Accuracy on pathological windows by how far the discharge stands out of what it
    sits on (synthetic corpora record it; empty for imported data)."""
    level = np.array([v or np.nan for v in _per_window(items, ws,
                                                       lambda i: i.discharge_snr)], float)
    return _accuracy_where(ws, pred, (
        (f"{lo:g}-{hi:g}x" if np.isfinite(hi) else f">={lo:g}x", (level >= lo) & (level < hi))
        for lo, hi in itertools.pairwise((*DISCHARGE_SNR_BINS, np.inf))))


def evaluate(model: bytes, items: list[CorpusItem], out_dir: Path | None = None, *,
             float_model=None, spec: FrontEndSpec,
             robustness: bool = True, windows: WindowSet | None = None,
             workers: int = 1, calibration: Calibration | None = None,
             arithmetic: Arithmetic | None = None) -> dict[str, Any]:
    """The report of ``model`` on ``items``. ``windows``: their clean windows, when the
    caller already has them (``build_windows(items)`` — the same windows) and evaluates
    several models on them. ``workers``: processes computing windows (the front end over
    every test condition dominates a report with robustness); results do not depend on it.
    ``arithmetic``: a bundle's (:attr:`edge.bundle.Bundle.arithmetic`); None: what
    :func:`convert.packing.pack` would ship for ``model`` and ``calibration`` (the model cut
    before its SOFTMAX, the table of the calibration's temperature)."""
    mel, win = spec.mel, spec.window
    cal = calibration or Calibration()
    if arithmetic is None:
        model = logits_model(model)
        arithmetic = packing_arithmetic(model, cal.temperature)
    clf = Classifier(model, list(LABELS), arithmetic=arithmetic)
    ws = windows if windows is not None else build_windows(items, mel, win, workers=workers)
    scores = int8_scores(clf, ws)
    raw = uncalibrated_probabilities(clf, scores)
    probs = int8_probabilities(clf, scores, cal)
    unfamiliar = np.array([cal.unfamiliar(w) for w in ws.x], bool)
    pred = probs.argmax(axis=1)
    report: dict[str, Any] = {
        "windows": len(ws), "recordings": len(items),
        "accuracy_int8": float((pred == ws.y).mean()),
        "macro_f1_int8": macro_f1(ws.y, pred),
        "per_class_int8": per_class(ws.y, pred),
        "ece_int8": ece(probs, ws.y),
        "ece_int8_uncalibrated": ece(raw, ws.y),
        "confidently_wrong_share": confidently_wrong(probs, ws.y, unfamiliar),
        "unfamiliar_share": float(unfamiliar.mean()) if len(ws) else 0.0,
        "temperature": cal.temperature,
        "arithmetic": arithmetic.name,
        "model_bytes": len(model),
        "input_quantization": list(clf.input_quantization),
        "output_quantization": list(clf.output_quantization),
    }
    report["accuracy_by_background"] = accuracy_by_background(items, ws, pred)
    report["accuracy_by_discharge_snr"] = accuracy_by_discharge_snr(items, ws, pred)
    cm = confusion(ws.y, pred)
    report["confusion_int8"] = {"labels": list(LABELS), "matrix": cm.tolist()}
    if float_model is not None:
        fprobs = float_model.predict(ws.float_input(), verbose=0, batch_size=256)
        fpred = fprobs.argmax(axis=1)
        report.update({
            "accuracy_float": float((fpred == ws.y).mean()),
            "macro_f1_float": macro_f1(ws.y, fpred),
            "agreement": float((fpred == pred).mean()),
            "ece_float": ece(fprobs, ws.y),
        })
    if robustness:
        # the clean condition (0 dB gain) is the test above: its accuracy is already known
        conditions = [Condition(snr_db=v) for v in SNR_DB]
        conditions += [Condition(gain_db=v) for v in GAIN_DB if v != 0.0]
        accuracy = {Condition(): report["accuracy_int8"]}
        with WindowBuilder(mel, win, workers=workers) as builder:
            pending = builder.submit(items, condition=conditions[0])
            for k, cond in enumerate(conditions):
                cw = pending()
                if k + 1 < len(conditions):  # the workers build the next while this runs
                    pending = builder.submit(items, condition=conditions[k + 1])
                accuracy[cond] = float((_predict(clf, cw) == cw.y).mean())
        report["accuracy_vs_snr_db"] = {str(v): accuracy[Condition(snr_db=v)] for v in SNR_DB}
        report["accuracy_vs_gain_db"] = {str(v): accuracy[Condition(gain_db=v)]
                                         for v in GAIN_DB}
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _predict(clf: Classifier, ws: WindowSet) -> np.ndarray:
    return int8_scores(clf, ws).argmax(axis=1)


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "confusion.json").write_text(json.dumps(report["confusion_int8"], indent=1))
    cm = np.array(report["confusion_int8"]["matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(9, 8))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted (int8)")
    ax.set_ylabel("true")
    ax.set_title(f"macro-F1 {report['macro_f1_int8']:.3f} on {report['windows']} windows")
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=110)
    plt.close(fig)
    if "accuracy_vs_snr_db" in report:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
        snr = report["accuracy_vs_snr_db"]
        a1.plot([float(k) for k in snr], list(snr.values()), "o-")
        a1.set_xlabel("SNR (dB, noise vs recording RMS)")
        a1.set_ylabel("accuracy (int8)")
        a1.set_ylim(0, 1)
        gain = report["accuracy_vs_gain_db"]
        a2.plot([float(k) for k in gain], list(gain.values()), "o-")
        a2.set_xlabel("gain (dB)")
        a2.set_ylim(0, 1)
        fig.tight_layout()
        fig.savefig(out_dir / "robustness.png", dpi=110)
        plt.close(fig)


def evaluate_model(model_path: Path, data: Path, out: Path | None,
                   checkpoint: Path | None = None, robustness: bool = True,
                   front_end: Path | None = None) -> dict[str, Any]:
    """A bundle is evaluated with its own front end, calibration and arithmetic; a bare
    .tflite with its checkpoint's front end (or ``front_end``: a bundle, checkpoint or JSON
    spec), cut before its SOFTMAX and run as a bundle would run it."""
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such file")
    cal = arithmetic = None
    spec = load_spec(front_end) if front_end is not None else None
    if model_path.suffix == ".nemg":
        b = Bundle.read(model_path)
        model, cal, arithmetic = b.model_bytes, b.calibration, b.arithmetic
        if spec is not None and spec != b.spec:
            raise InputError(f"{model_path}: the bundle's front end is not --front-end's")
        spec = b.spec
    else:
        model = model_path.read_bytes()
    fm = None
    if checkpoint is not None:
        from convert.architecture import load_checkpoint
        from convert.quantize import checkpoint_file

        ckpt = checkpoint_file(checkpoint)
        fm = load_checkpoint(ckpt)
        spec = spec or FrontEndSpec.load(ckpt)
    if spec is None:
        raise InputError(f"{model_path}: a bare .tflite needs --checkpoint or --front-end to "
                         "say which features it was trained on")
    return evaluate(model, read_corpus(data), out, float_model=fm, robustness=robustness,
                    workers=WORKERS, spec=spec, calibration=cal, arithmetic=arithmetic)
