"""One front-end spec from training to device (edge/spec.py): chosen at training, written
beside the checkpoint, packed into the bundle, read back by quantisation, evaluation and
the box. A model trained on another front end runs on the box with that front end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DEV_KEY, SHIPPED, assert_one_line_error, run_nemg

from edge.errors import ConfigError, InputError
from edge.features import MelConfig
from edge.spec import DEFAULT_SPEC, FrontEndSpec
from edge.windows import WindowConfig


def test_the_default_spec_in_tflite_micro_terms():
    d = DEFAULT_SPEC.describe()
    assert (d["sample_rate_hz"], d["window_size_ms"], d["window_step_ms"]) == (20_000, 25.6, 10.0)
    assert d["num_channels"] == 40 and d["decision_every_s"] == 0.5
    assert d["int8_db_range"] == [DEFAULT_SPEC.mel.db_min, DEFAULT_SPEC.mel.db_max]


def test_the_spec_round_trips_through_a_manifest_and_a_file(tmp_path):
    spec = FrontEndSpec(MelConfig(num_mels=32, hop_length=160), WindowConfig(120, 40))
    m = json.loads(json.dumps(spec.to_manifest()))
    assert FrontEndSpec.from_manifest(m) == spec
    (tmp_path / "spec.json").write_text(json.dumps(m))
    assert FrontEndSpec.load(tmp_path / "spec.json") == spec
    assert FrontEndSpec.load(SHIPPED).mel == MelConfig()  # the shipped model's own


@pytest.mark.parametrize("content,message", [
    (None, "no such file"), ("{", "not a readable JSON"), ('{"mel_config": {}}', "window"),
    ('{"mel_config": {"num_mels": 0}, "window": {}}', "positive"),
])
def test_a_bad_spec_file_is_refused_clearly(tmp_path, content, message):
    p = tmp_path / "spec.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises((InputError, ConfigError), match=message):
        FrontEndSpec.load(p)


def test_a_model_trained_on_another_front_end_carries_it_to_the_box(tmp_path):
    """Train -> quantise -> pack -> pipeline with a non-default spec, no spec passed after
    training: each stage reads it from the one before."""
    from convert.corpus import synth_corpus
    from convert.packing import pack
    from convert.pipeline import quantize_checkpoint
    from convert.train import TrainConfig, train
    from edge.bundle import Bundle
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    spec = FrontEndSpec(MelConfig(num_mels=32, hop_length=160), WindowConfig(100, 50))
    synth_corpus(tmp_path / "c", 2, seed=5, duration_s=2.5)
    ckpt = train(tmp_path / "c", tmp_path / "ck", TrainConfig(epochs=1, augment=False,
                                                              width=0.5), spec).checkpoint
    assert FrontEndSpec.load(ckpt) == spec  # written beside the checkpoint
    q = quantize_checkpoint(ckpt, tmp_path / "c", tmp_path / "m.tflite", "ptq")
    bundle = tmp_path / "m.nemg"
    pack(bundle, model=(tmp_path / "m.tflite").read_bytes(), key_path=DEV_KEY, name="t",
         version="0.0.1", spec=FrontEndSpec.load(ckpt))
    assert q["bytes"] > 0 and Bundle.read(bundle).spec == spec
    pipe = Pipeline(load_verified(bundle))
    assert (pipe.mel, pipe.win) == (spec.mel, spec.window)
    results = pipe.push(np.zeros(int(2.5 * pipe.fs), np.int16), 0)[0]
    assert results and results[0].end_s - results[0].start_s == pytest.approx(
        spec.window.seconds(spec.mel))
    # fine-tuning it under another front end is refused, not silently retrained
    with pytest.raises(ConfigError, match="another front end"):
        train(tmp_path / "c", tmp_path / "ft", TrainConfig(epochs=1, init_from=str(bundle)),
              DEFAULT_SPEC)


def test_nemg_train_and_features_take_a_front_end(tmp_path):
    help_text = run_nemg("train", "--help", check=True).stdout
    assert "--front-end" in help_text
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(4000, np.int16))
    out = json.loads(run_nemg("features", str(x), "--front-end", str(SHIPPED),
                              check=True).stdout)
    assert out["front_end"]["window_step_ms"] == 10.0 and out["num_mels"] == 40
    assert_one_line_error(run_nemg("features", str(x), "--front-end", str(tmp_path / "no")),
                          "no such file")
