"""The exam leaves the box on a USB stick (``nemg log save-usb``, the bedside page's "save
to USB"): the session's EDF+ (:mod:`edge.exam_export`) and its printable report
(:mod:`edge.exam_report`) written to the stick mounted at :data:`USB_MOUNT`
(deploy/99-nemg-usb.rules, deploy/media-nemg\\x2dusb.mount).

Each file is written under a temporary name, fsynced, renamed, and the folder fsynced: a
stick pulled mid-write holds every file finished before, whole, and no half file under a
final name. A missing stick, a read-only one and one without the room are said in one line
before anything is written."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from edge.errors import InputError
from edge.eventlog import EventLog
from edge.fileio import fsync_dir

USB_MOUNT = Path("/media/nemg-usb")
"""Where the stick is mounted (deploy/media-nemg\\x2dusb.mount)."""

USB_FOLDER = "nemg"
"""The folder on the stick the exams go in."""

REPORT_ALLOWANCE_BYTES = 2 * 2**20
"""Room asked for beside the EDF+: the report (HTML ≈ 50 kB, its PDF ≈ 0.3 MB) and the
annotations, with margin."""


def _edf_bytes(log: EventLog, session_id: int) -> int:
    """What the session's EDF+ will take: its samples (int16) and a header."""
    from edge.exam_recording import open_recording

    rec = open_recording(log.path, session_id)
    return 2 * int(rec.samples.size) + 64 * 1024


def check_stick(mount: Path, need_bytes: int, *,
                is_mount: Callable[[Path], bool] = os.path.ismount) -> None:
    """Refuse, in one line, a stick that is not there, is read-only, or lacks the room."""
    if not mount.is_dir() or not is_mount(mount):
        raise InputError(f"{mount}: no USB stick (plug one in; it is mounted there)")
    if os.statvfs(mount).f_flag & os.ST_RDONLY:
        raise InputError(f"{mount}: the USB stick is read-only (its lock switch?)")
    free = shutil.disk_usage(mount).free
    if free < need_bytes:
        raise InputError(f"{mount}: not enough room on the USB stick: the exam needs "
                         f"{need_bytes / 2**20:.1f} MB, {free / 2**20:.1f} MB free")


def _place(write: Callable[[Path], object], final: Path) -> Path:
    """``write(tmp)`` beside ``final``, fsync, rename, fsync the folder."""
    tmp = final.with_name(f".{final.name}.part")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(final.parent, required=False)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        why = {errno.ENOSPC: "the USB stick is full", errno.EROFS: "the USB stick is read-only",
               errno.EIO: "the USB stick was pulled or failed"}.get(exc.errno, exc.strerror)
        raise InputError(f"{final}: not saved: {why}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def save_exam(log: EventLog, session_id: int, mount: Path = USB_MOUNT, *,
              pdf: bool | None = None,
              is_mount: Callable[[Path], bool] = os.path.ismount) -> list[Path]:
    """The session's EDF+ and report on the stick at ``mount``, in ``nemg/``; returns the
    files written. ``pdf``: the report as PDF too (None: where Chromium is present)."""
    from edge.exam_export import export_edf
    from edge.exam_report import write_report
    from edge.paths import find_chromium

    session = log.session(session_id)  # an unknown session: said before the stick
    check_stick(mount, _edf_bytes(log, session_id) + REPORT_ALLOWANCE_BYTES,
                is_mount=is_mount)
    folder = mount / USB_FOLDER
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: not saved: {exc.strerror}") from None
    stem = f"session-{session_id}-{(session['started'] or '')[:10] or 'undated'}"
    written = [
        _place(lambda p: export_edf(log, log.path, session_id, p), folder / f"{stem}.edf"),
        _place(lambda p: write_report(log, session_id, p, as_pdf=False), folder / f"{stem}.html")]
    if pdf or (pdf is None and find_chromium() is not None):
        written.append(_place(lambda p: write_report(log, session_id, p, as_pdf=True),
                              folder / f"{stem}.pdf"))
    return written
