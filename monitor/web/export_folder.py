"""Where a static export lands: a fresh folder beside the target, swapped in whole, never over foreign files."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import MonitorError
from ..i18n import literal, said

__all__ = ["MARKER", "ExportError", "check_target", "staging", "swap_in", "sync_folder", "sync_tree", "write_marker"]

MARKER = ".tpmon-export"  # written last into every export: only a folder holding it may be replaced
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class ExportError(MonitorError):
    """The static export cannot be made, or would be broken: one line, and the previous export stays."""


def check_target(target: Path) -> Path:
    """The folder to (re)place, symlinks resolved; ExportError if it holds files no export wrote."""
    target = target.expanduser().resolve()
    if target.parent == target:
        raise ExportError(said("{target} cannot be an export folder; choose a dedicated folder", target=target))
    if target.exists():
        if not target.is_dir():
            raise ExportError(said("{target} exists and is not a folder; nothing was changed", target=target))
        if not (target / MARKER).is_file() and any(target.iterdir()):
            raise ExportError(
                said(
                    "{target} is not empty and is not a previous export (no {marker} in it); nothing was changed",
                    target=target,
                    marker=MARKER,
                )
            )
    elif not target.parent.is_dir():
        raise ExportError(said("{folder} does not exist; create it first", folder=target.parent))
    return target


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A new empty folder beside `target` (same filesystem, so the swap is a rename); removed on failure."""
    try:
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
    except OSError as exc:
        raise ExportError(
            said("cannot write beside {target}: {reason}", target=target, reason=literal(exc.strerror or str(exc)))
        ) from None
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def write_marker(staged: Path, files: int, size: int) -> None:
    """Mark `staged` as an export, so the next export may replace it."""
    (staged / MARKER).write_text(json.dumps({"generator": "tpmon export", "files": files, "bytes": size}) + "\n")


def sync_folder(folder: Path) -> None:
    """Blocking: the folder's entries (names renamed into it or deleted) are on disk."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def sync_tree(root: Path) -> None:
    """Blocking: every file and folder under `root` is on disk before it is put in place (a crash never leaves a
    published folder of empty or partial files). Linux: one syncfs(2) of its filesystem; elsewhere each file."""
    handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(handle):
            return
    finally:
        os.close(handle)
    for path in sorted(root.rglob("*"), reverse=True):  # the files, then their folders
        if path.is_dir():
            sync_folder(path)
        else:
            with path.open("rb") as opened:
                os.fsync(opened.fileno())
    sync_folder(root)


def _syncfs(handle: int) -> bool:
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    syncfs.argtypes = [ctypes.c_int]
    if syncfs(handle) == 0:
        return True
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code))


def swap_in(staged: Path, target: Path) -> None:
    """Put `staged` at `target` in one step where the kernel allows it, then delete the previous export.

    A web server serving `target` sees either the whole previous export or the whole new one: Linux swaps
    the two folders with renameat2(RENAME_EXCHANGE); elsewhere two renames leave a gap of microseconds.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staged, 0o777 & ~umask)  # mkdtemp makes it 0700: a web server running as another user must read it
    try:
        sync_tree(staged)  # on disk before it is in place: a crash leaves the previous export or this one, whole
        if not target.exists():
            os.rename(staged, target)
            sync_folder(target.parent)
            return
        if _exchange(staged, target):
            sync_folder(target.parent)
            shutil.rmtree(staged)  # now the previous export
            return
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, previous / target.name)
        os.rename(staged, target)
        sync_folder(target.parent)
        shutil.rmtree(previous)
    except OSError as exc:
        reason = literal(exc.strerror or str(exc))
        raise ExportError(
            said("cannot put the export in place at {target}: {reason}", target=target, reason=reason)
        ) from None


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))
