"""Opening files a hostile or careless user hands us: regular files only, bounded; and
making a write durable (:func:`fsync_dir`).

A FIFO would block a reader forever and ``/dev/zero`` never ends; a symlink planted in a
store could redirect a write. Everything here refuses those before reading a byte.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import InputError, NemgError

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder",
          stat.S_IFLNK: "a symbolic link"}


READ_PIECE = 1 << 20
"""Bytes read at a time by :func:`read_regular_file`."""


def open_regular(path: Path, *, follow_links: bool = True,
                 error: type[NemgError] = InputError) -> int:
    """A read-only descriptor of a regular file (never blocks on a FIFO). The caller
    closes it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        if not follow_links and path.is_symlink():
            raise error(f"{path}: is a symbolic link (refused)") from None
        raise error(f"{path}: cannot open ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path}: is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, "
                    "not a file")
    os.set_blocking(fd, True)
    return fd


def check_regular(path: Path, error: type[NemgError] = InputError) -> None:
    """Refuse (without blocking) a path that is not a regular file."""
    os.close(open_regular(path, error=error))


def read_regular_file(path: Path, max_bytes: int, what: str = "file",
                      error: type[NemgError] = InputError, *, follow_links: bool = True
                      ) -> bytes:
    """The whole content of a regular file of at most ``max_bytes``."""
    fd = open_regular(path, follow_links=follow_links, error=error)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise error(f"{path}: {size} bytes is larger than a {what} may be "
                        f"({max_bytes} bytes)")
        # in pieces: memory follows what the file holds, never what a limit (or a header
        # that set it) allows
        parts, total = [], 0
        try:
            while part := f.read(min(READ_PIECE, max_bytes + 1 - total)):
                parts.append(part)
                total += len(part)
                if total > max_bytes:  # it grew while we read
                    raise error(f"{path}: larger than a {what} may be ({max_bytes} bytes)")
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror})") from None
    return b"".join(parts)


def fsync_dir(path: Path, *, required: bool = True) -> None:
    """Make a rename in folder ``path`` durable (a power cut or a pulled stick after it
    keeps it). ``required`` False: a folder that cannot be synced (some file systems refuse)
    is let be, the file itself having been synced; otherwise the OSError is raised."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if required:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if required:
            raise
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """``data`` as ``path``, all or nothing: a temporary beside it, renamed over it (a
    process killed half-way leaves the old file or none, never half a file).
    ``durable``: also fsync the file and the folder (the rename survives a power cut)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)
