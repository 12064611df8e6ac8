"""Writing a file so that no reader ever sees half of it: the one atomic write the stages use
(training state, reports, clip caches, long recordings). The lowest stage owns it, so each stage
above may call it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

# atomic_write's temporary files: ".tmp-<pid>-<name>" beside the file they will replace.
TEMPORARY_PREFIX = ".tmp-"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(temporary_path)`` writes the whole file; it then replaces ``path`` in one rename.

    The temporary file sits in the same folder (a rename within one file system is atomic) and
    keeps the suffix: Keras wants ``.weights.h5``, numpy and soundfile read the format from it.
    Its name carries the process id, so two processes writing the same path never share one.
    A kill at any moment leaves the previous complete file (or none), never a cut one.
    """
    path = Path(path)
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:  # on disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda temporary: temporary.write_text(text))


def remove_partial_writes(folder: str | Path, older_than_s: float | None = None) -> None:
    """Removes the temporary files that writers killed inside :func:`atomic_write` left in
    ``folder`` (never read: the rename never happened). This process's own are kept, and with
    ``older_than_s`` also every younger one: another process may be writing it now."""
    own = f"{TEMPORARY_PREFIX}{os.getpid()}-"
    for partial in Path(folder).glob(f"{TEMPORARY_PREFIX}*"):
        if partial.name.startswith(own):
            continue
        try:
            if older_than_s is None or time.time() - partial.stat().st_mtime > older_than_s:
                partial.unlink(missing_ok=True)
        except OSError:  # removed by another process meanwhile
            continue
