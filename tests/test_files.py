"""Atomic output: all files or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostnet_keras.atomic_write import write_atomically


def test_write_atomically_writes_every_file(tmp_path: Path) -> None:
    written = write_atomically({tmp_path / "a" / "x.bin": b"\x00\x01", tmp_path / "y.txt": "é"})
    assert written == [tmp_path / "a" / "x.bin", tmp_path / "y.txt"]
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "y.txt").read_text(encoding="utf-8") == "é"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.bin", "y.txt"]


def test_write_atomically_leaves_nothing_on_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = tmp_path / "out" / "model.tflite"
    with pytest.raises(OSError):
        write_atomically({target: b"model", blocker / "sub" / "labels.txt": b"labels"})
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []
