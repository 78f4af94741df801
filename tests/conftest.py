"""Shared test helpers: run the real ``nemg`` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_nemg(*args: str, timeout: float = 120, env: dict | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
    """``python -m edge.cli ARGS`` with this interpreter; text output captured."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"nemg {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Bad input: non-zero exit, no traceback, one error line naming the problem."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("nemg")]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], errors[0]


def rewrite_bundle(src: Path, dst: Path, change) -> Path:
    """A copy of bundle ``src`` at ``dst`` whose members ``change(members)`` edited in place
    (a dict name -> bytes): how tests tamper with bundles."""
    import zipfile

    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    return dst


def as_before_the_recogniser(members: dict[str, bytes], manifest: dict) -> None:
    """Edit a bundle's members and parsed manifest in place into one packed before the
    discharge recogniser: no ``recogniser`` in its decisions, no decision golden labels
    (whose hash the manifest lists). A test that re-signs an edited manifest without
    repacking needs it: the golden labels hold for the decisions they were packed with."""
    import io

    import numpy as np

    from edge.bundle import sha256

    manifest.get("decision", {}).pop("recogniser", None)
    with np.load(io.BytesIO(members["golden.npz"])) as g:
        kept = {k: g[k] for k in g.files if not k.startswith("decision_")}
    buf = io.BytesIO()
    np.savez_compressed(buf, **kept)
    members["golden.npz"] = buf.getvalue()
    manifest["members"]["golden.npz"] = sha256(members["golden.npz"])


# ---- model stores ------------------------------------------------------------------------
SHIPPED = ROOT / "models" / "nemg-default.nemg"

HANG_GUARD_S = 600.0
"""The one deadline a test may hold: against a hang only. A correct run finishes long
before it however slow the machine; what a test checks is keyed to samples, frames and
events, and a tripped guard fails as a hang, never as a wrong figure."""
DEV_PUB = ROOT / "keys" / "trusted" / "nemg-dev.pub"
DEV_KEY = ROOT / "keys" / "dev" / "nemg-dev.key"


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """The shipped model re-signed as versions 1.0.0, 1.1.0, 1.2.0 and 0.9.0, plus
    variants."""
    from convert.packing import generate_key, pack
    from edge.bundle import Bundle

    d = tmp_path_factory.mktemp("bundles")
    shipped = Bundle.read(SHIPPED)
    model, spec = shipped.model_bytes, shipped.spec
    out = {}
    for v in ("1.0.0", "1.1.0", "1.2.0", "0.9.0"):
        out[v] = d / f"m-{v}.nemg"
        pack(out[v], model=model, key_path=DEV_KEY, name="nemg-test", version=v, spec=spec)
    out["other-board"] = d / "other-board.nemg"
    pack(out["other-board"], model=model, key_path=DEV_KEY, name="x", version="2.0.0",
         boards=("ads1299-fe",), spec=spec)
    rogue_key, _ = generate_key(d / "rogue", "rogue")
    out["unknown-key"] = d / "rogue.nemg"
    pack(out["unknown-key"], model=model, key_path=rogue_key, name="x", version="2.0.0",
         spec=spec)
    return out


def new_store(tmp_path, policy="self-test"):
    from edge.store import ModelStore

    return ModelStore.init(tmp_path / "store", board="nemg-fe1", trusted=[DEV_PUB],
                           confirm_policy=policy)


def installed(store, path, **kw):
    return store.install(path.read_bytes(), source=path.name, **kw)


def contraction_wav(path: Path, duration_s: float) -> Path:
    """A simulated steady healthy contraction (biosim, 20 kHz) written as a WAV the virtual
    front end plays: what the live MUAP tests record."""
    import numpy as np

    from convert.biosim import simulate_contraction
    from edge.readers.wav import write_wav

    rec = simulate_contraction(fs=20_000, duration_s=duration_s,
                               rng=np.random.default_rng([4242, 2, 7]), pool="healthy",
                               excitation=2.5)
    write_wav(path, np.clip(np.round(rec.signal_uv / 0.5), -32768, 32767).astype(np.int16),
              20_000, 0.5)
    return path


def small_contraction():
    """A myopathic muscle's steady contraction, small (peaks of a few hundred µV), 10 s of
    int16 at the model rate: the shipped model alone calls it positive sharp waves (the
    failure of docs/generalisation.md); the rest check withholds those calls."""
    import numpy as np

    from convert.biosim import simulate_contraction
    from edge.readers.recording import uv_to_int16
    from edge.spec import MelConfig

    cfg = MelConfig()
    rec = simulate_contraction(fs=cfg.sample_rate_hz, duration_s=10.0, pool="myopathic",
                               excitation=2.0, rng=np.random.default_rng([5, 2]))
    return uv_to_int16(rec.signal_uv * 0.125, cfg.uv_per_lsb)


def small_contraction_wav(path: Path) -> Path:
    from edge.readers.wav import write_wav
    from edge.spec import MelConfig

    cfg = MelConfig()
    write_wav(path, small_contraction(), cfg.sample_rate_hz, cfg.uv_per_lsb)
    return path


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say plainly when the bedside page's browser tests did not run, and why."""
    from rigs.web_rig import browser_missing

    why = browser_missing()
    if why is not None:
        terminalreporter.write_sep("!", f"browser tests were SKIPPED: {why}", yellow=True)


@pytest.fixture(scope="session")
def demo_exam(tmp_path_factory):
    """``nemg demo --fast`` with an event log, run once for the suite: (log path, the
    process). Its session 1 is recorded beside the log (edge/exam_recording.py); tests
    read it, none writes to it."""
    db = tmp_path_factory.mktemp("demo-exam") / "events.db"
    proc = run_nemg("demo", "--fast", "--plain", "--log", str(db), check=True)
    return db, proc


def mount_namespaces_missing() -> str | None:
    """Why a test cannot mount a real tmpfs in a private mount namespace here (``unshare
    -rm``: a read-only or tiny file system, as a full or locked USB stick is), or None."""
    import shutil

    if shutil.which("unshare") is None:
        return "no unshare"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"],
                          capture_output=True, check=False)
    return None if proc.returncode == 0 else "unshare cannot mount a tmpfs here"
