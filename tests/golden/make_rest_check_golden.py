"""Regenerate the rest check's golden vectors. Only when the exact decomposition changes ON
PURPOSE: the box's labels depend on it, on every box alike.

    python tests/golden/make_rest_check_golden.py --force
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edge.muap.decomposition import decompose
from edge.readers import load_two_columns
from edge.resample import resample_int16
from edge.rest_check import voluntary_rates
from edge.spec import MelConfig

OUT = Path(__file__).with_name("rest_check_emgdb.json")
EXCERPT = Path(__file__).parents[1] / "data" / "emgdb_healthy_3s.txt"


def golden_input() -> np.ndarray:
    """The committed emgdb excerpt as the box holds it: int16 at the canonical scale,
    brought to the model rate by the box's resampler (bit-exact, with its own goldens)."""
    cfg = MelConfig()
    rec = load_two_columns(EXCERPT, "mV")
    return resample_int16(rec.to_int16(cfg.uv_per_lsb), round(rec.sample_rate_hz),
                          cfg.sample_rate_hz)


def golden() -> dict:
    x, fs = golden_input(), MelConfig().sample_rate_hz
    units = decompose(x, fs, exact=True)
    return {"sample_rate_hz": fs, "samples": int(x.size),
            "firings": [[int(i) for i in u.firings] for u in units],
            "voluntary_rates_hz": voluntary_rates(x, fs)}


def main() -> int:
    from overwrite import may_write  # beside this script

    if not may_write(OUT):
        return 1
    OUT.write_text(json.dumps(golden(), indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
