"""Replace a file as one unit: a reader sees the old content or the new, never a mix or a half.

`write_atomically(final, write)` lets `write(temp)` fill a temporary file in a hidden
`.saving-*` folder next to `final`, flushes it to disk and renames it over `final` (an atomic
`rename(2)` on one file system), then flushes the folder entry. A process killed mid-write
leaves the old file untouched and only a stale hidden folder, which `clean_stale` removes (call
it at start-up and before saving). Several threads or processes may replace the same file at
once: the last rename wins, whole.

Used for models saved by name (`persistence.save_bundle`) and for any other store that keeps
one file per record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".saving-"
# A save takes seconds; a temporary folder this old belongs to a process that died mid-write.
STALE_AFTER_S = 600.0


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    # The rename itself is only durable once the folder entry is on disk (not possible everywhere).
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def write_atomically(final: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(temp_path)` to fill a temporary file, then move it over `final`; returns `final`.

    The temporary file has `final`'s name (Keras insists on the .keras suffix) inside a hidden
    folder in the same directory, so it never matches a listing such as `*.keras`. If `write`
    raises, nothing is replaced and the temporary folder is removed.
    """
    final = Path(final)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=final.parent) as folder:
        temp = Path(folder) / final.name
        write(temp)
        # On disk before the rename, so a power cut cannot leave a renamed but empty file.
        _fsync_file(temp)
        os.replace(temp, final)
    _fsync_folder(final.parent)
    return final


def write_bytes(final: str | Path, data: bytes) -> Path:
    """`final` replaced by `data` as one unit."""
    return write_atomically(final, lambda temp: temp.write_bytes(data))


def write_text(final: str | Path, text: str) -> Path:
    """`final` replaced by `text` (UTF-8) as one unit."""
    return write_atomically(final, lambda temp: temp.write_text(text, encoding="utf-8"))


def clean_stale(directory: str | Path, max_age_s: float = STALE_AFTER_S) -> int:
    """Remove temporary folders left in `directory` by writers that died; returns how many went.

    Only folders older than `max_age_s` go, so a save in progress in another process keeps its own.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    now = time.time()
    for entry in directory.glob(f"{TEMP_PREFIX}*"):
        try:
            if not entry.is_dir() or now - entry.stat().st_mtime < max_age_s:
                continue
            shutil.rmtree(entry)
            removed += 1
        except OSError as error:  # another process removed it first, or it is not ours to remove
            logger.info("Could not remove the stale %s: %s", entry.name, error)
    return removed
