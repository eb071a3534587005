"""Atomic file output: nothing is half-written, every program's outputs go through here."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path


def write_atomically(files: Mapping[str | os.PathLike, bytes | str]) -> list[Path]:
    """Writes each file through a temporary file in its folder, then renames them in order.

    Every temporary file is written and fsynced before the first rename; on failure the
    temporary files are removed and no destination is touched. Text is written as UTF-8.

    Returns:
        The destination paths, in order.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for destination, data in files.items():
            path = Path(destination)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(data.encode() if isinstance(data, str) else data)
                stream.flush()
                os.fsync(stream.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
    return [path for _, path in temps]
