"""Three ways to label a window, read from one run of the box's pipeline, side by side:

- **cnn**: the model alone (its top class above the bundle's threshold, on a familiar
  window): what the box said before it had a recogniser;
- **recogniser**: the discharge recogniser alone (:mod:`edge.recogniser`): the class its
  trains name, else 'uncertain' (it names a class only where its evidence is decisive);
- **box**: what the box says, the two fused (:meth:`edge.recogniser.Evidence.fuse`).

Scored against each recording's one class (every window of a simulated recording holds
it): macro-F1 over the 12 classes ('uncertain' is never right), the share of windows
confidently wrong (a wrong label at a top probability ≥ :data:`CONFIDENT`, or one the
recogniser named), the share of abnormal windows lost (withheld, or called voluntary), the
share of voluntary windows called pathological, and the share of recordings whose finding
(:meth:`edge.pipeline.WindowTally.finding`) is pathological.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from edge.labels import LABELS, PATHOLOGICAL, UNCERTAIN

WAYS = ("cnn", "recogniser", "box")
CONFIDENT = 0.8
"""A wrong label at this top probability or more is confidently wrong."""


def labels_three_ways(w, labels: list[str], threshold: float) -> dict[str, tuple[str, bool]]:
    """(label, confident) of one :class:`edge.pipeline.WindowResult` each way."""
    top = labels[int(np.argmax(w.probabilities))]
    sure = w.confidence >= CONFIDENT
    cnn = top if w.confidence >= threshold and not w.unfamiliar else UNCERTAIN
    named = w.evidence.named if w.evidence is not None else None
    return {"cnn": (cnn, sure), "recogniser": (named or UNCERTAIN, named is not None),
            "box": (w.label, sure or w.criterion == "names")}


@dataclass
class ThreeWayTally:
    """Windows and recordings scored each way, in memory that does not grow with them."""

    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {way: Counter() for way in WAYS})

    def add(self, truth: str, windows: Iterable, labels: list[str], threshold: float) -> None:
        """One recording of class ``truth`` and its pipeline windows."""
        from edge.pipeline import WindowTally

        tallies = {way: WindowTally() for way in WAYS}
        for w in windows:
            for way, (label, sure) in labels_three_ways(w, labels, threshold).items():
                c = self.counts[way]
                c["windows"] += 1
                if label == truth:
                    c[f"tp:{truth}"] += 1
                else:
                    c[f"fn:{truth}"] += 1
                    if label != UNCERTAIN:
                        c[f"fp:{label}"] += 1
                        c["confidently_wrong"] += sure
                if truth in PATHOLOGICAL:
                    c["abnormal"] += 1
                    c["abnormal_lost"] += label in (UNCERTAIN, "motor_unit")
                if truth == "motor_unit":
                    c["voluntary"] += 1
                    c["voluntary_pathological"] += label in PATHOLOGICAL
                tallies[way].add(SimpleNamespace(label=label, confidence=w.confidence,
                                                 contracting=False))
        for way, t in tallies.items():
            c = self.counts[way]
            c["recordings"] += 1
            c["recordings_flagged_pathological"] += bool(t.finding()["pathological"])

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for way, c in self.counts.items():
            n = max(1, c["windows"])
            present = [lab for lab in LABELS if c[f"tp:{lab}"] + c[f"fn:{lab}"]]
            f1 = {lab: 2 * c[f"tp:{lab}"] / max(1, 2 * c[f"tp:{lab}"] + c[f"fp:{lab}"]
                                                 + c[f"fn:{lab}"]) for lab in present}
            out[way] = {
                "macro_f1": round(float(np.mean(list(f1.values()))), 4) if f1 else None,
                "confidently_wrong_share": round(c["confidently_wrong"] / n, 4),
                "abnormal_windows_lost_share": round(c["abnormal_lost"] / c["abnormal"], 4)
                if c["abnormal"] else None,
                "voluntary_windows_called_pathological":
                    round(c["voluntary_pathological"] / c["voluntary"], 4)
                    if c["voluntary"] else None,
                "recordings_flagged_pathological": round(
                    c["recordings_flagged_pathological"] / max(1, c["recordings"]), 4),
                "windows": c["windows"], "recordings": c["recordings"],
                "f1": {k: round(v, 3) for k, v in f1.items()}}
        return out
