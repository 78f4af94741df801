"""What the box computes for recordings, in a form two machines (or two runtimes) can
compare exactly: the int8 features (a hash for the whole file and one per model window),
every window's int8 model outputs, and each file's line of ``nemg classify --json``.

    python tools/arm/armref.py OUT.json [--sim DIR] [--store-bundles DIR] [FILE...]

writes the x86 reference that tools/arm/test_arm.py checks the emulated aarch64 box
against. Files: those given, else the demo exam, the shared real recordings that exist
here and, with ``--sim``, a simulated set written there first (:data:`SIM_SETS`: 120 clips
of both simulators). ``--store-bundles`` writes the shipped model re-signed as two
versions (the development key), for the store install/rollback check: packing needs the
workstation toolchain, which the emulated box does not have.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
SHARED_REAL = Path(os.environ.get("NEMG_SHARED_REAL", PROJECT.parent / "shared/data/real"))
"""Real recordings that may not be committed (../shared/data/real/README.md)."""

SIM_SETS: tuple[tuple[str, int], ...] = (("template", 5), ("bio", 5))
"""(simulator, clips per class) of the simulated set: 2 × 5 × 12 classes = 120 clips."""
SIM_SEED = 32
STORE_VERSIONS = ("1.0.0", "1.1.0")


def default_files(sim: Path | None = None) -> list[str]:
    """The demo exam, each shared real recording that exists here, and the simulated
    clips under ``sim``. Paths as given to ``nemg classify`` (its JSON repeats them):
    relative to the project, or absolute."""
    files = ["rigs/data/demo-exam.wav"]
    for name in ("R00108.hea", "emg_healthy.txt", "emg_myopathy.txt", "emg_neuropathy.txt"):
        if (SHARED_REAL / name).is_file():
            files.append(str(SHARED_REAL / name))
    if sim is not None:
        files += sorted(str(p) for p in sim.glob("*/wav/*.wav"))
    return files


def write_sim_set(out: Path) -> None:
    """The simulated clips, by the workstation's ``nemg data synth`` (deterministic: a
    folder already there is kept)."""
    for simulator, per_class in SIM_SETS:
        folder = out / simulator
        if (folder / "manifest.json").is_file():
            continue
        subprocess.run([sys.executable, "-m", "edge.cli", "data", "synth", "--out",
                        str(folder), "--per-class", str(per_class), "--seed", str(SIM_SEED),
                        "--simulator", simulator], cwd=PROJECT, check=True,
                       stdout=subprocess.DEVNULL)


def write_store_bundles(out: Path) -> list[Path]:
    """The shipped model packed as :data:`STORE_VERSIONS` with the development key."""
    from convert.packing import pack
    from edge.bundle import Bundle

    shipped = Bundle.read(PROJECT / "models" / "nemg-default.nemg")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in STORE_VERSIONS:
        paths.append(out / f"m-{v}.nemg")
        pack(paths[-1], model=shipped.model_bytes, key_path=PROJECT / "keys/dev/nemg-dev.key",
             name="nemg-arm-test", version=v, spec=shipped.spec)
    return paths


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def arithmetic_name() -> str:
    """The int8 arithmetic the shipped bundle names (its manifest; none = legacy)."""
    from edge.arithmetic import Arithmetic
    from edge.bundle import Bundle

    return Arithmetic.from_manifest(Bundle.read(PROJECT / "models/nemg-default.nemg")
                                    .manifest).name


@functools.cache
def _shipped() -> Any:
    """The shipped bundle (verified, self-tested) and the classifier its pipeline runs."""
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    bundle = load_verified()
    return bundle, Pipeline(bundle).classifier  # whatever arithmetic the bundle names


def fingerprint(file: str) -> dict[str, Any]:
    """The shipped bundle run over ``file`` window by window, as the pipeline cuts them,
    straight from the front end to the int8 classifier."""
    from edge.acquire.files import load_samples
    from edge.features import MelFrontEnd

    bundle, classifier = _shipped()
    mel, win = bundle.mel_config, bundle.window_config
    samples = load_samples(PROJECT / file, mel)
    features = MelFrontEnd(mel).process(samples)
    starts = range(0, features.shape[0] - win.frames + 1, win.hop_frames)
    windows = [features[a : a + win.frames] for a in starts]
    return {
        "samples_sha": _sha(samples.tobytes()),
        "features_sha": _sha(features.tobytes()),
        "window_features_sha": [_sha(w.tobytes()) for w in windows],
        "scores": [classifier.invoke_int8(w).tolist() for w in windows],
    }


def classify_json(files: list[str], python: list[str] | None = None,
                  env: dict[str, str] | None = None) -> dict[str, str]:
    """Each file's line of ``nemg classify FILE... --json``, run as a user runs it (one
    child process, by default of this interpreter, from the project folder)."""
    proc = subprocess.run([*(python or [sys.executable]), "-m", "edge.cli", "classify",
                           *files, "--json"], cwd=PROJECT, capture_output=True, text=True,
                          check=False, env={**os.environ, **(env or {})})
    lines = proc.stdout.splitlines(keepends=True)
    if proc.returncode != 0 or len(lines) != len(files):
        raise RuntimeError(f"nemg classify ({len(files)} files) -> {proc.returncode}, "
                           f"{len(lines)} lines: {proc.stderr[-2000:]}")
    return dict(zip(files, lines, strict=True))


def fingerprints(files: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`fingerprint` of each file with its ``classify --json`` line."""
    lines = classify_json(files)
    return {f: {**fingerprint(f), "classify_json": lines[f]} for f in files}


def main(argv: list[str] | None = None) -> int:
    """Write the reference JSON (and the simulated set and store bundles if asked)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--sim", type=Path, help="write (once) and include the simulated set")
    ap.add_argument("--store-bundles", type=Path, help="write the store-check bundles here")
    args = ap.parse_args(argv)
    import platform

    from edge.cli.info import collect

    if args.sim:
        write_sim_set(args.sim)
    if args.store_bundles:
        write_store_bundles(args.store_bundles)
    files = args.files or default_files(args.sim)
    ref = {"info": collect(), "machine": platform.machine(), "arithmetic": arithmetic_name(),
           "labels": _shipped()[0].labels, "files": fingerprints(files)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(ref, indent=1) + "\n")
    windows = sum(len(f["scores"]) for f in ref["files"].values())
    print(f"armref: {args.out}: {len(files)} files, {windows} windows on {ref['machine']} "
          f"({ref['info']['tflite_runtime']}; arithmetic {ref['arithmetic']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
