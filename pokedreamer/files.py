"""Writing files so that a crash at any moment leaves either the old file or the whole new one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, tmp_suffix: str = ".tmp") -> None:
    """Writes ``data`` beside ``path``, syncs it, then renames it over ``path``."""
    tmp = path.with_name(path.name + tmp_suffix)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_directory(directory: Path) -> None:
    """Makes renames inside ``directory`` durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
