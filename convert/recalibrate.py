"""``nemg bundle calibrate``: a bundle's model, unchanged, with a temperature and a
familiarity check fitted anew on validation recordings of both simulators, re-signed.

For a model built before ``make model`` fitted them (1.4.0 and 1.4.1 carry none:
temperature 1, no familiarity), or to refit them on other validation data. The weights and
the front end stay as they are; the temperature is fitted on the int8 logits under the
bundle's arithmetic (:func:`convert.calibrate.fit_logit_temperature`) and the repacked
bundle's softmax table is rebuilt from it (:func:`convert.packing.pack`), while its golden
logits stay the same bits (a bundle from before the arithmetic section is cut before its
SOFTMAX on the way). Every window's top class is the same; only what its probability means
and which windows are answered ``uncertain`` change. Validation
recordings are drawn from seeds no test corpus uses (``make model`` tests on 22, ``nemg
bench crosssim`` on 101). Fitted as ``make model`` fits them (:func:`convert.calibrate.
calibrate`): the temperature on the validation windows as they are, the familiarity
threshold on windows augmented as in training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

VALIDATION_SEED = 33
REFERENCE_SEED = 34
"""The familiarity's reference (the "training" windows it is measured against)."""
PER_CLASS = 20


def recalibrate(bundle_path: Path, out: Path, *, key_path: Path, version: str,
                per_class: int = PER_CLASS, development_key: bool = False,
                workers: int | None = None) -> dict[str, Any]:
    """Write ``out``: ``bundle_path``'s model with a new calibration; returns what was
    fitted and the new manifest's name and version."""
    from convert.biosim import biosim_corpus
    from convert.calibrate import calibrate
    from convert.corpus import read_corpus, synth_corpus
    from convert.dataset import WindowBuilder
    from convert.evaluate import WORKERS
    from convert.packing import repack
    from convert.train import log
    from edge.runtime import load_verified

    b = load_verified(bundle_path)
    workers = workers or WORKERS
    with tempfile.TemporaryDirectory() as d:
        corpora = {}
        for name, seed in (("validation", VALIDATION_SEED), ("reference", REFERENCE_SEED)):
            log(f"[calibrate] {name} recordings: {per_class} per class of each simulator")
            synth_corpus(Path(d) / f"synth-{name}", per_class, seed, workers=workers)
            biosim_corpus(Path(d) / f"biosim-{name}", per_class, seed)
            corpora[name] = (read_corpus(Path(d) / f"synth-{name}")
                             + read_corpus(Path(d) / f"biosim-{name}"))
        with WindowBuilder(b.spec.mel, b.spec.window, workers=workers) as builder:
            val_windows = builder.build(corpora["validation"])
        cal = calibrate(b.model_bytes, corpora["reference"], corpora["validation"],
                        val_windows, b.spec)
    m = b.manifest
    metrics = {**m.get("metrics", {}), "calibration_validation": {
        "simulators": ["synth", "biosim"], "per_class": per_class,
        "seed": VALIDATION_SEED, "reference_seed": REFERENCE_SEED}}
    new = repack(b, out, key_path=key_path, version=version, metrics=metrics,
                 development_key=development_key or bool(m.get("development_key")),
                 calibration=cal)
    return {"bundle": str(out), "name": new["name"], "version": new["version"],
            "temperature": cal.temperature, "unfamiliar_above": cal.unfamiliar_above}
