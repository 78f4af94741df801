"""Regenerate the front end's golden vectors. Only when the features change ON PURPOSE:
every shipped model was trained on the old bits, so a change here needs a new model.

    python tests/golden/make_features_golden.py --force
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edge.features import MelFrontEnd
from edge.mel_reference import frame_signal
from edge.spec import MelConfig
from rigs.testsignals import emg_like

OUT = Path(__file__).with_name("features_default.npz")


def golden_inputs(config: MelConfig) -> dict[str, np.ndarray]:
    n = config.sample_rate_hz // 4  # 0.25 s each: small, but every code path
    t = np.arange(n)
    square = np.where((t // 40) % 2 == 0, 32767, -32768).astype(np.int16)
    impulse = np.zeros(n, dtype=np.int16)
    impulse[::997] = -32768
    return {
        "fibrillation": emg_like("fibrillation", 0.25, config, seed=11),
        "motor_unit": emg_like("motor_unit", 0.25, config, seed=12, gain_db=6),
        "square_full_scale": square,
        "impulses": impulse,
        "silence": np.zeros(n, dtype=np.int16),
        "quiet": emg_like("noise", 0.25, config, seed=13, gain_db=-30),
    }


def main() -> int:
    from overwrite import may_write  # beside this script

    if not may_write(OUT):
        return 1
    config = MelConfig()
    fe = MelFrontEnd(config)
    arrays: dict[str, np.ndarray] = {}
    for name, x in golden_inputs(config).items():
        arrays[f"{name}/input"] = x
        arrays[f"{name}/int8"] = fe.process(x)
        frames = frame_signal(x, config)[:4]
        arrays[f"{name}/log2_q16"] = fe.stages(frames)["log2_q16"]
    config_json = json.dumps(config.to_dict(), sort_keys=True).encode()
    arrays["config_json"] = np.frombuffer(config_json, np.uint8)
    arrays["table_sha256"] = np.frombuffer(fe.table_digest.encode(), np.uint8)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
