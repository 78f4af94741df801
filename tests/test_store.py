"""Model store and flashing: atomic, verified, self-tested, trial/confirm, rollback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from conftest import (
    DEV_KEY,
    DEV_PUB,
    ROOT,
    assert_one_line_error,
    installed,
    new_store,
    rewrite_bundle,
    run_nemg,
)

from edge.bundle import Bundle
from edge.errors import DeviceError
from edge.store import STEPS, InstallRefused, ModelStore
from wire.link import SerialLink
from wire.transfer import FlashClient, FlashServer, PtyChannel


def test_install_confirm_upgrade_rollback(tmp_path, bundles):
    s = new_store(tmp_path)
    st = installed(s, bundles["1.0.0"])
    assert (st.active, st.active_version, st.trial) == ("a", "1.0.0", True)
    assert s.confirm().trial is False
    st = installed(s, bundles["1.1.0"])
    assert (st.active, st.previous, st.active_version) == ("b", "a", "1.1.0")
    st = s.rollback("test")
    assert (st.active, st.active_version, st.trial) == ("a", "1.0.0", False)
    actions = [h["action"] for h in s.history()]
    assert actions == ["init", "install", "confirm", "install", "rollback"]


@pytest.mark.parametrize("case,message", [
    ("unknown-key", "unknown key"),
    ("other-board", "not compatible with board nemg-fe1"),
    ("0.9.0", "older than the active 1.0.0"),
])
def test_refusals_leave_the_old_model_active(tmp_path, bundles, case, message):
    s = new_store(tmp_path)
    installed(s, bundles["1.0.0"])
    s.confirm()
    before = s.slot_path("a").read_bytes()
    with pytest.raises(InstallRefused, match=message):
        installed(s, bundles[case])
    st = s.status()
    assert (st.active, st.active_version, st.trial) == ("a", "1.0.0", False)
    assert s.slot_path("a").read_bytes() == before
    assert s.history()[-1]["action"] == "refused"


def test_tampered_truncated_and_selftest_mismatch_are_refused(tmp_path, bundles):
    s = new_store(tmp_path)
    installed(s, bundles["1.0.0"])
    s.confirm()
    good = bundles["1.1.0"].read_bytes()
    with pytest.raises(InstallRefused, match="truncated"):
        s.install(good[: len(good) // 3])

    def flip_a_model_bit(members):
        model = bytearray(members["model.tflite"])
        model[len(model) // 2] ^= 0x40
        members["model.tflite"] = bytes(model)

    bad = rewrite_bundle(bundles["1.1.0"], tmp_path / "tampered.nemg", flip_a_model_bit)
    with pytest.raises(InstallRefused, match="sha256"):
        installed(s, bad)
    # validly signed, but its golden vectors do not reproduce on this interpreter
    import io

    import numpy as np

    g = Bundle.read(bundles["1.1.0"]).golden()
    g["scores"] = g["scores"] ^ 1
    from convert.packing import load_private_key
    from edge.bundle import sha256

    def resign_with_wrong_scores(members):
        buf = io.BytesIO()
        np.savez(buf, **g)
        members["golden.npz"] = buf.getvalue()
        manifest = json.loads(members["manifest.json"])
        manifest["members"]["golden.npz"] = sha256(members["golden.npz"])
        raw = json.dumps(manifest).encode()
        members["manifest.json"] = raw
        members["manifest.sig"] = load_private_key(DEV_KEY).sign(raw)

    selftest_bad = rewrite_bundle(bundles["1.1.0"], tmp_path / "selftest.nemg",
                                  resign_with_wrong_scores)
    with pytest.raises(InstallRefused, match="self-test failed"):
        installed(s, selftest_bad)
    assert s.status().active_version == "1.0.0"


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_every_step_leaves_a_valid_model(tmp_path, bundles, step):
    s = new_store(tmp_path)
    for v in ("1.0.0", "1.1.0"):  # slot a, then b: the next install overwrites previous
        installed(s, bundles[v])
        s.confirm()

    def fault(at):
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        ModelStore(s.root, fault=fault).install(bundles["1.2.0"].read_bytes())
    after = ModelStore(s.root)  # the reboot
    b = after.active()  # verifies signature and hashes
    assert b.version in ("1.1.0", "1.2.0")  # old or new, never a mix
    b.self_test()
    st = after.state()
    if st["previous"] is not None:  # a fallback is a model that ran before, never the new one
        assert after.load_slot(st["previous"]).version in ("1.0.0", "1.1.0")
    st, _ = after.boot_check()
    assert st.active_version in ("1.1.0", "1.2.0") and not st.trial


@pytest.mark.parametrize("step", ["slot-half-written", "slot-renamed", "state-written",
                                  "state-renamed"])
def test_sigkill_mid_install_leaves_a_valid_model(tmp_path, bundles, step):
    s = new_store(tmp_path)
    installed(s, bundles["1.0.0"])
    s.confirm()
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "model", "--store", str(s.root), "install",
         str(bundles["1.1.0"])], env={**__import__("os").environ, "NEMG_STORE_KILL_AT": step},
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == -9  # killed at that step
    b = ModelStore(s.root).active()
    assert b.version in ("1.0.0", "1.1.0")
    b.self_test()


def test_unconfirmed_model_rolls_back_under_manual_policy(tmp_path, bundles):
    s = new_store(tmp_path, policy="manual")
    installed(s, bundles["1.0.0"])
    s.confirm()
    installed(s, bundles["1.1.0"])
    st, what = s.boot_check()
    assert st.trial and "on trial" in what  # first start: allowed, on trial
    st, what = s.boot_check()
    assert (st.active_version, st.trial) == ("1.0.0", False) and "not confirmed" in what


def test_self_test_policy_confirms_and_a_corrupt_active_slot_falls_back(tmp_path, bundles):
    s = new_store(tmp_path)
    installed(s, bundles["1.0.0"])
    s.confirm()
    installed(s, bundles["1.1.0"])
    st, what = s.boot_check()
    assert (st.active_version, st.trial, what) == ("1.1.0", False, "confirmed by self-test")
    path = s.slot_path("b")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the SD card rotted
    path.write_bytes(bytes(data))
    st, what = s.boot_check()
    assert (st.active_version, what) == ("1.0.0", "rolled back")


def test_downgrade_allowed_only_when_asked_and_trial_blocks_installs(tmp_path, bundles):
    s = new_store(tmp_path)
    installed(s, bundles["1.1.0"])
    with pytest.raises(InstallRefused, match="on trial"):
        installed(s, bundles["1.0.0"])
    s.confirm()
    st = installed(s, bundles["0.9.0"], allow_downgrade=True)
    assert st.active_version == "0.9.0"


def serve(store):
    ch = PtyChannel()
    server = FlashServer(store, ch)
    stop = threading.Event()
    t = threading.Thread(target=server.serve, kwargs={"until": stop.is_set}, daemon=True)
    t.start()
    return ch, server, stop, t


def test_serial_transfer_resumes_after_interruption(tmp_path, bundles):
    s = new_store(tmp_path)
    ch, _server, stop, t = serve(s)
    data = bundles["1.0.0"].read_bytes()
    try:
        with SerialLink(ch.path, read_timeout=0.01) as link, \
                pytest.raises(DeviceError, match="interrupted"):
            FlashClient(link, timeout_s=5.0).send(data, "m.nemg", stop_after=len(data) // 2)
        with SerialLink(ch.path, read_timeout=0.01) as link:
            c = FlashClient(link, timeout_s=5.0)
            res = c.send(data, "m.nemg")
        assert c.resumed_at >= len(data) // 2  # did not start again
        assert res["ok"] and res["version"] == "1.0.0"
    finally:
        stop.set()
        t.join(5)
        ch.close()
    assert s.status().active_version == "1.0.0"


def test_serial_transfer_survives_corruption(tmp_path, bundles):
    s = new_store(tmp_path)
    ch, server, stop, t = serve(s)
    try:
        with SerialLink(ch.path, read_timeout=0.01) as link:
            c = FlashClient(link, timeout_s=1.0, retries=50, corrupt_rate=3e-5, seed=4)
            res = c.send(bundles["1.0.0"].read_bytes(), "m.nemg")
        assert res["ok"] and c.resent > 0  # some chunks had to go again
    finally:
        stop.set()
        t.join(5)
        ch.close()
    assert s.status().active_version == "1.0.0"
    assert server.decoder.stats.crc_errors + server.decoder.stats.bad_headers > 0


def test_refusal_over_serial_is_a_clear_error(tmp_path, bundles):
    s = new_store(tmp_path)
    ch, _server, stop, t = serve(s)
    try:
        with SerialLink(ch.path, read_timeout=0.01) as link, \
                pytest.raises(DeviceError, match=r"box refused: .*unknown key"):
            FlashClient(link, timeout_s=5.0).send(bundles["unknown-key"].read_bytes(), "r")
    finally:
        stop.set()
        t.join(5)
        ch.close()
    assert s.status().active is None


def test_model_and_flash_cli(tmp_path, bundles):
    root = tmp_path / "s"
    run_nemg("model", "--store", str(root), "init", "--trust", str(DEV_PUB), check=True)
    run_nemg("flash", str(bundles["1.0.0"]), "--store", str(root), check=True)
    st = json.loads(run_nemg("model", "--store", str(root), "status", check=True).stdout)
    assert st["active_version"] == "1.0.0" and st["trial"] is True
    run_nemg("model", "--store", str(root), "confirm", check=True)
    assert_one_line_error(run_nemg("flash", str(bundles["0.9.0"]), "--store", str(root)),
                          "older than the active")
    assert_one_line_error(run_nemg("model", "--store", str(tmp_path / "nothing"), "status"),
                          "no model store at", "nemg model init")
    hist = run_nemg("model", "--store", str(root), "history", check=True).stdout.splitlines()
    assert [json.loads(h)["action"] for h in hist][-1] == "refused"
