"""Fine-tuning for a clinic's own data: on a small, shifted dataset, adapting the shipped
model beats both the shipped model and training from scratch on the same data."""

from __future__ import annotations

import pytest
from conftest import ROOT

from convert.architecture import load_checkpoint
from convert.corpus import read_corpus, synth_corpus
from convert.dataset import build_windows
from convert.evaluate import macro_f1
from convert.train import TrainConfig, train
from edge.spec import MelConfig, WindowConfig

SHIPPED = ROOT / "models" / "nemg-default.nemg"
#: Another clinic's amplifier: a 800 Hz low-pass (augmentation never goes below 3 kHz),
#: a 30 Hz high-pass and strong 60 Hz mains.
SHIFT = {"lowpass_hz_amp": 800.0, "highpass_hz": 30.0, "mains_hz": 60.0, "mains_uv": 60.0}


def f1(model, windows) -> float:
    pred = model.predict(windows.float_input(), verbose=0, batch_size=256).argmax(axis=1)
    return macro_f1(windows.y, pred)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("shift")
    synth_corpus(d / "train", 5, seed=101, duration_s=4.0, patient_overrides=SHIFT)
    synth_corpus(d / "test", 4, seed=202, duration_s=4.0, patient_overrides=SHIFT)
    test = build_windows(read_corpus(d / "test"), MelConfig(), WindowConfig())
    return d, test


def test_fine_tuning_beats_base_and_scratch(shifted, tmp_path):
    d, test = shifted
    epochs = 6
    common = dict(epochs=epochs, patience=epochs, augment=False, seed=3, val_fraction=0.2)
    ft = train(d / "train", tmp_path / "ft", TrainConfig(init_from=str(SHIPPED), freeze=2,
                                                         **common))
    scratch = train(d / "train", tmp_path / "scratch", TrainConfig(**common))
    from edge.bundle import Bundle

    base_ckpt = tmp_path / "base.h5"
    base_ckpt.write_bytes(Bundle.read(SHIPPED).members["checkpoint.h5"])
    f_base = f1(load_checkpoint(base_ckpt), test)
    f_ft = f1(load_checkpoint(ft.checkpoint), test)
    f_scratch = f1(load_checkpoint(scratch.checkpoint), test)
    print(f"shifted domain macro-F1: base {f_base:.3f}, fine-tuned {f_ft:.3f}, "
          f"scratch {f_scratch:.3f}")
    assert f_ft > f_base + 0.02
    assert f_ft > f_scratch + 0.02
