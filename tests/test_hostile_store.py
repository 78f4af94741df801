"""The store and the bundle reader assume a hostile file: links, foreign owners, damaged
state, zip bombs. Each case here once overwrote, crashed or inflated."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, assert_one_line_error, installed, new_store, run_nemg

from edge.bundle import Bundle
from edge.errors import IntegrityError, NemgError
from edge.store import ModelStore, _open_new


@pytest.fixture
def store_with_model(tmp_path, bundles):
    s = new_store(tmp_path)
    installed(s, bundles["1.0.0"])
    s.confirm()
    return s


@pytest.mark.parametrize("planted", ["slots/b/bundle.nemg.tmp", "state.json.tmp",
                                     "history.jsonl", "slots/b/bundle.nemg"])
def test_a_planted_link_is_refused_and_its_target_never_written(store_with_model, bundles,
                                                                tmp_path, planted):
    s = store_with_model
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = s.root / planted
    if link.exists():
        link.unlink()
    link.symlink_to(victim)
    with pytest.raises(NemgError, match="symbolic link"):
        installed(s, bundles["1.1.0"])
    assert victim.read_text() == "precious"
    proc = run_nemg("flash", str(bundles["1.1.0"]), "--store", str(s.root))
    assert_one_line_error(proc, "symbolic link")
    assert victim.read_text() == "precious"


def test_a_slot_folder_that_is_a_link_out_of_the_store_is_refused(store_with_model, bundles,
                                                                 tmp_path):
    s = store_with_model
    outside = tmp_path / "outside"
    outside.mkdir()
    (s.root / "slots" / "b").rmdir()
    (s.root / "slots" / "b").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link"):
        installed(s, bundles["1.1.0"])
    assert list(outside.iterdir()) == []


def test_writes_replace_a_link_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "x.tmp"
    link.symlink_to(victim)
    with os.fdopen(_open_new(link), "w") as f:
        f.write("new")
    assert victim.read_text() == "precious" and not link.is_symlink()
    assert link.read_text() == "new"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_of_another_user_is_refused(store_with_model, bundles):
    s = store_with_model
    os.chown(s.root / "history.jsonl", 12345, 12345)
    with pytest.raises(IntegrityError, match="belongs to user 12345"):
        installed(s, bundles["1.1.0"])


@pytest.mark.parametrize("content", ['{"active": "../../b2", "previous": null}', "",
                                     "[1, 2]", '{"active": "a", "previous": "a"}',
                                     '{"active": "a", "trial": "yes"}', "\xff\xfe"])
def test_a_damaged_state_is_rebuilt_from_history_and_slots(store_with_model, bundles,
                                                           content):
    s = store_with_model
    installed(s, bundles["1.1.0"])
    s.confirm()  # history: a 1.0.0 confirmed, then b 1.1.0 confirmed
    (s.root / "state.json").write_bytes(content.encode("latin-1"))
    st = ModelStore(s.root).status()
    assert (st.active, st.active_version, st.previous, st.trial) == ("b", "1.1.0", "a", False)
    assert s.history()[-1]["action"] == "recovered"
    (s.root / "state.json").write_text("")
    for args in (("model", "status", "--store", str(s.root)),
                 ("model", "boot-check", "--store", str(s.root))):
        out = json.loads(run_nemg(*args, check=True).stdout)
        assert out["active_version"] == "1.1.0"
    (s.root / "state.json").write_text("")
    proc = run_nemg("classify", str(ROOT / "rigs" / "data" / "demo-exam.wav"),
                    env={"NEMG_STORE": str(s.root)}, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_a_state_whose_slot_is_broken_falls_back_to_a_verified_one(store_with_model, bundles):
    s = store_with_model
    installed(s, bundles["1.1.0"])
    s.confirm()
    s.slot_path("b").write_bytes(b"rotten")
    (s.root / "state.json").write_text("{")
    st = ModelStore(s.root).status()
    assert st.active == "a" and st.active_version == "1.0.0"


def test_a_model_that_failed_its_trial_is_no_fallback(store_with_model, bundles):
    s = store_with_model
    installed(s, bundles["1.1.0"])  # on trial in slot b
    st = s.rollback("trial failed")
    assert (st.active, st.previous) == ("a", None)
    with pytest.raises(NemgError, match="no previous model"):
        s.rollback("again")  # would have made the unconfirmed 1.1.0 permanent


def _bomb(path, inflated: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in ("manifest.json", "manifest.sig", "golden.npz"):
            z.writestr(name, b"{}")
        with z.open("model.tflite", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(inflated >> 20):
                f.write(chunk)


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path):
    bomb = tmp_path / "bomb.nemg"
    _bomb(bomb, 1 << 30)  # 1 GiB of zeros in about 1 MB
    assert bomb.stat().st_size < 4 << 20
    with pytest.raises(IntegrityError, match="compressed"):
        Bundle.read(bomb)
    limit = 600 << 20  # address space: a 1 GiB inflation cannot happen under it

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "edge.cli", "bundle", "verify", str(bomb)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          preexec_fn=cap)
    assert_one_line_error(proc, "bomb.nemg", "compressed")


def test_a_member_that_declares_more_than_the_file_holds_is_refused(tmp_path):
    src = ROOT / "models" / "nemg-default.nemg"
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = z.getinfo("model.tflite")
    # The central directory's uncompressed size of model.tflite, made enormous (its file
    # name follows the 46-byte entry header; the size is at offset 24 of that header).
    at = data.find(b"model.tflite", data.find(b"PK\x01\x02")) - 46
    assert data[at:at + 4] == b"PK\x01\x02"
    size_at = at + 24
    assert int.from_bytes(data[size_at:size_at + 4], "little") == info.file_size
    data[size_at:size_at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(IntegrityError, match="declares"):
        Bundle.from_bytes(bytes(data), "lying.nemg")


@pytest.mark.parametrize("make", ["fifo", "dev-zero"])
def test_a_bundle_path_that_is_no_file_is_refused_without_hanging(tmp_path, make):
    p = tmp_path / "m.nemg"
    if make == "fifo":
        os.mkfifo(p)
    else:
        p.symlink_to("/dev/zero")
    proc = run_nemg("bundle", "verify", str(p), timeout=60)
    assert_one_line_error(proc, "m.nemg", "not a file")


MALFORMED = {
    "begin-not-json": (0x20, b"{size"),
    "begin-a-list": (0x20, b"[1, 2]"),
    "begin-no-sha256": (0x20, b'{"size": 10}'),
    "begin-size-text": (0x20, b'{"size": "abc", "sha256": "' + b"a" * 64 + b'"}'),
    "begin-size-huge": (0x20, b'{"size": 1e30, "sha256": "' + b"a" * 64 + b'"}'),
    "chunk-short": (0x21, b"\x00\x00"),
    "end-not-json": (0x22, b"\xff"),
}


def test_flash_server_answers_every_malformed_frame_and_keeps_serving(tmp_path, bundles):
    import threading

    from wire.link import SerialLink
    from wire.protocol import FrameDecoder, encode_frame
    from wire.transfer import XFER_RESULT, FlashClient, FlashServer, PtyChannel

    s = new_store(tmp_path)
    ch = PtyChannel()
    server = FlashServer(s, ch)
    stop = threading.Event()
    t = threading.Thread(target=server.serve, kwargs={"until": stop.is_set}, daemon=True)
    t.start()
    try:
        with SerialLink(ch.path, read_timeout=0.05) as link:
            dec = FrameDecoder()
            answered = 0
            for i, (ftype, payload) in enumerate(MALFORMED.values()):
                link.write(encode_frame(ftype, i, payload))
                replies = []
                for _ in range(6000):  # until the answer; a hang guard of minutes only
                    replies += [f for f in dec.feed(link.read()) if f.type == XFER_RESULT]
                    if replies:
                        break
                assert replies and json.loads(replies[0].payload)["ok"] is False
                answered += 1
            assert answered == len(MALFORMED)
            # nothing is lost on this line: the client's timeout only guards a hang
            res = FlashClient(link, timeout_s=60).send(bundles["1.0.0"].read_bytes(), "m")
        assert res["ok"] and t.is_alive()
    finally:
        stop.set()
        t.join(5)
        ch.close()
    assert server.refused >= len(MALFORMED) and s.status().active_version == "1.0.0"


def test_staging_never_grows_past_the_declared_size(tmp_path):
    import hashlib

    from wire.transfer import OFFSET, XFER_BEGIN, XFER_CHUNK, FlashServer

    class Wire:  # the server's side of a channel: what it said
        def __init__(self):
            self.out = []

        def write(self, data):
            self.out.append(data)

    s = new_store(tmp_path)
    server = FlashServer(s, Wire(), max_bytes=1000)
    digest = hashlib.sha256(b"x" * 10).hexdigest()
    with pytest.raises(NemgError, match=r"size must be 1\.\.1000"):
        server._handle(XFER_BEGIN, json.dumps({"size": 5000, "sha256": digest}).encode())
    server._handle(XFER_BEGIN, json.dumps({"size": 10, "sha256": digest}).encode())
    with pytest.raises(NemgError, match="past the declared 10 bytes"):
        server._handle(XFER_CHUNK, OFFSET.pack(0) + b"y" * 2048)
    server._handle(XFER_CHUNK, OFFSET.pack(0) + b"x" * 6)
    with pytest.raises(NemgError, match="past the declared"):
        server._handle(XFER_CHUNK, OFFSET.pack(6) + b"x" * 5)
    assert (s.root / "staging" / f"{digest}.part").stat().st_size == 6


def _flash_with_a_full_disk(bundle, store, limit: int) -> subprocess.CompletedProcess:
    """``nemg flash`` where no file may grow past ``limit`` bytes (a full disk's EFBIG;
    root ignores permissions, so a read-only store is simulated the same way)."""
    import signal

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "edge.cli", "flash", str(bundle), "--store",
                           str(store)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          preexec_fn=full_disk)


def test_a_full_disk_during_flash_leaves_no_partial_file(store_with_model, bundles):
    s = store_with_model
    proc = _flash_with_a_full_disk(bundles["1.1.0"], s.root, 100_000)  # a bundle is 400 kB
    assert_one_line_error(proc, "cannot be written")
    assert not list(s.root.rglob("*.tmp"))  # nothing left to keep the disk full
    st = ModelStore(s.root).status()
    assert (st.active, st.active_version, st.trial) == ("a", "1.0.0", False)


def test_a_store_that_cannot_be_written_still_gives_the_real_refusal(store_with_model,
                                                                     bundles):
    proc = _flash_with_a_full_disk(bundles["unknown-key"], store_with_model.root, 0)
    assert_one_line_error(proc, "unknown key")


def test_a_damaged_config_is_one_line_saying_how_to_mend_it(store_with_model):
    (store_with_model.root / "config.json").write_text("{not json")
    proc = run_nemg("model", "status", "--store", str(store_with_model.root))
    assert_one_line_error(proc, "config.json is damaged", "nemg model init")
