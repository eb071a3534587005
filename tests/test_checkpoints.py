"""Tests for :mod:`ghostnet_keras.weights.torch_files` (no PyTorch needed or imported).

Small ``torch.save``-style zip archives are crafted here with the :mod:`pickle` module: tensors
are stand-in objects that reduce to ``torch._utils._rebuild_tensor_v2`` and whose storages are
emitted as persistent ids, exactly like ``torch.save`` does.  The stand-in ``torch`` modules
are put into :data:`sys.modules` only while pickling (via ``monkeypatch``).
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ghostnet_keras.weights.torch_files import (
    SUPPORTED_SUFFIXES,
    CheckpointError,
    DisallowedGlobalError,
    read_state_dict,
)

from .conftest import COMPACT_WEIGHTS

# --------------------------------------------------------------------------------------------
# Crafting torch.save-style archives without torch
# --------------------------------------------------------------------------------------------

_STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class FakeStorage:
    """A flat buffer saved as ``data/<key>``; ``storage_name`` is the torch storage class."""

    def __init__(self, flat: np.ndarray, storage_name: str | None = None) -> None:
        self.flat = np.ascontiguousarray(flat).reshape(-1)
        self.storage_name = storage_name or _STORAGE_NAMES[self.flat.dtype]


class FakeTensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(
        self,
        storage: FakeStorage,
        size: tuple[int, ...],
        stride: tuple[int, ...] | None = None,
        offset: int = 0,
    ) -> None:
        self.storage = storage
        self.size = tuple(size)
        if stride is None:  # C-contiguous strides, in elements
            stride = tuple(int(s) for s in np.empty(size, dtype=np.uint8).strides)
        self.stride = tuple(stride)
        self.offset = offset

    @classmethod
    def of(cls, array: np.ndarray) -> FakeTensor:
        """A contiguous tensor holding ``array``."""
        array = np.asarray(array)
        return cls(FakeStorage(array), array.shape)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, OrderedDict())


class FakeParameter:
    """Pickles like ``nn.Parameter``: ``_rebuild_parameter(tensor, requires_grad, hooks)``."""

    def __init__(self, tensor: FakeTensor) -> None:
        self.tensor = tensor

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        rebuild = sys.modules["torch._utils"]._rebuild_parameter
        return rebuild, (self.tensor, True, OrderedDict())


def _install_fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Register stand-in ``torch`` / ``torch._utils`` modules so pickle can name their globals."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _stub(*args: Any) -> None:  # never called: only its module/name are pickled
        raise AssertionError("stand-in torch function called")

    for name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
        func = types.FunctionType(_stub.__code__, {}, name)
        func.__module__ = "torch._utils"
        func.__qualname__ = name
        setattr(utils_mod, name, func)
    for name in [*_STORAGE_NAMES.values(), "BFloat16Storage"]:
        setattr(torch_mod, name, type(name, (), {"__module__": "torch"}))
    torch_mod._utils = utils_mod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)
    return torch_mod


def _pickle_like_torch(obj: Any, torch_mod: types.ModuleType) -> tuple[bytes, dict[str, bytes]]:
    """Pickle ``obj`` (protocol 2) with storages as persistent ids; return pickle and records."""
    records: dict[str, bytes] = {}
    keys: dict[int, str] = {}

    class _Pickler(pickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            if not isinstance(o, FakeStorage):
                return None
            if id(o) not in keys:
                keys[id(o)] = str(len(keys))
            key = keys[id(o)]
            records[key] = o.flat.tobytes()
            storage_type = getattr(torch_mod, o.storage_name)
            return ("storage", storage_type, key, "cpu", o.flat.size)

    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue(), records


def _write_zip(
    path: Path,
    data_pkl: bytes,
    records: dict[str, bytes],
    *,
    archive: str = "archive",
    byteorder: str | None = "little",
) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", data_pkl)
        if byteorder is not None:
            zf.writestr(f"{archive}/byteorder", byteorder)
        for key, raw in records.items():
            zf.writestr(f"{archive}/data/{key}", raw)
        zf.writestr(f"{archive}/version", "3\n")
    return path


@pytest.fixture
def save_torch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Path]:
    """Return ``save(obj, name, **zip_kwargs) -> path`` writing a torch.save-style zip."""
    torch_mod = _install_fake_torch(monkeypatch)

    def save(obj: Any, name: str = "ckpt.pth", **kwargs: Any) -> Path:
        data_pkl, records = _pickle_like_torch(obj, torch_mod)
        return _write_zip(tmp_path / name, data_pkl, records, **kwargs)

    return save


def _small_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn.running_mean": rng.standard_normal(4).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }


def _as_fake(state: dict[str, np.ndarray]) -> OrderedDict[str, FakeTensor]:
    return OrderedDict((k, FakeTensor.of(v)) for k, v in state.items())


def _assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        assert actual[key].shape == value.shape, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


# --------------------------------------------------------------------------------------------
# The shared reference checkpoints
# --------------------------------------------------------------------------------------------


def test_reference_pth_matches_safetensors(reference_dir: Path) -> None:
    from_pth = read_state_dict(reference_dir / "ghostnet_050.pth")
    from_st = read_state_dict(str(reference_dir / "ghostnet_050.safetensors"))
    assert len(from_pth) == 512
    assert sorted(from_pth) == sorted(from_st)
    for key, value in from_st.items():
        got = from_pth[key]
        assert isinstance(got, np.ndarray)
        assert got.dtype == value.dtype, key
        assert got.shape == value.shape, key
        assert got.flags["C_CONTIGUOUS"], key
        np.testing.assert_array_equal(got, value, err_msg=key)
    tracked = [k for k in from_pth if k.endswith("num_batches_tracked")]
    assert tracked, "num_batches_tracked entries must be kept"
    assert all(from_pth[k].dtype == np.int64 and from_pth[k].shape == () for k in tracked)
    assert {v.dtype for v in from_pth.values()} == {np.dtype(np.float32), np.dtype(np.int64)}


def test_truncated_reference_pth(reference_dir: Path, tmp_path: Path) -> None:
    data = (reference_dir / "ghostnet_050.pth").read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated") as info:
        read_state_dict(bad)
    assert str(bad) in str(info.value)


# --------------------------------------------------------------------------------------------
# Crafted archives: round trip, wrappers, views, dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".pth.tar", ".pt", ".bin", ".ckpt", ".PTH"])
def test_round_trip_all_torch_suffixes(save_torch: Callable[..., Path], suffix: str) -> None:
    state = _small_state()
    path = save_torch(_as_fake(state), name=f"small{suffix}")
    _assert_same(read_state_dict(path), state)


def test_plain_dict_and_parameters(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    obj = {k: FakeParameter(FakeTensor.of(v)) for k, v in state.items()}
    _assert_same(read_state_dict(save_torch(obj)), state)


def test_all_storage_dtypes_preserved(save_torch: Callable[..., Path]) -> None:
    state = {
        f"t_{dtype.name}": (np.arange(6) % 2 if dtype == np.bool_ else np.arange(6))
        .astype(dtype)
        .reshape(2, 3)
        for dtype in _STORAGE_NAMES
    }
    _assert_same(read_state_dict(save_torch(_as_fake(state))), state)


def test_strided_views_and_shared_storage(save_torch: Callable[..., Path]) -> None:
    base = np.arange(24, dtype=np.float32)
    storage = FakeStorage(base)
    obj = {
        # a transposed (non-contiguous) 4x3 view of the first 12 elements
        "transposed": FakeTensor(storage, (4, 3), stride=(1, 4)),
        # a contiguous 2x3 slice starting at element 12
        "offset": FakeTensor(storage, (2, 3), stride=(3, 1), offset=12),
        # a scalar at element 23, and an empty tensor
        "scalar": FakeTensor(storage, (), stride=(), offset=23),
        "empty": FakeTensor(storage, (0, 5), stride=(5, 1)),
    }
    got = read_state_dict(save_torch(obj))
    np.testing.assert_array_equal(got["transposed"], base[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(got["offset"], base[12:18].reshape(2, 3))
    assert got["scalar"].shape == ()
    assert got["scalar"] == 23.0
    assert got["empty"].shape == (0, 5)
    assert got["empty"].dtype == np.float32
    for value in got.values():
        assert value.flags["C_CONTIGUOUS"]
        assert value.flags["OWNDATA"]
    got["offset"][0, 0] = -1.0  # independent copies, writable
    assert got["transposed"][0, 0] == 0.0


def test_bfloat16_widened_to_float32(save_torch: Callable[..., Path]) -> None:
    expected = np.array([1.0, -2.5, 3.140625, 0.0, 65280.0], dtype=np.float32)
    bits = (expected.view(np.uint32) >> 16).astype(np.uint16)
    obj = {"w": FakeTensor(FakeStorage(bits, "BFloat16Storage"), (5,))}
    got = read_state_dict(save_torch(obj))["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_big_endian_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch_mod = _install_fake_torch(monkeypatch)
    state = _small_state()
    data_pkl, records = _pickle_like_torch(_as_fake(state), torch_mod)
    # Re-encode every storage big endian; the pickle is unchanged.
    big = {}
    for key, value in zip(records, state.values(), strict=True):
        big[key] = value.astype(value.dtype.newbyteorder(">")).tobytes()
    path = _write_zip(tmp_path / "big.pth", data_pkl, big, byteorder="big")
    _assert_same(read_state_dict(path), state)


def test_missing_byteorder_means_little(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    _assert_same(read_state_dict(save_torch(_as_fake(state), byteorder=None)), state)


def test_module_prefix_stripped(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    prefixed = OrderedDict((f"module.{k}", FakeTensor.of(v)) for k, v in state.items())
    _assert_same(read_state_dict(save_torch(prefixed)), state)


def test_module_prefix_kept_unless_on_every_key(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    mixed = {f"module.{k}" if i else k: v for i, (k, v) in enumerate(state.items())}
    _assert_same(read_state_dict(save_torch(_as_fake(mixed))), mixed)


def test_state_dict_wrapper_unwrapped(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    wrapped = {"epoch": 12, "arch": "ghostnet_050", "state_dict": _as_fake(state)}
    _assert_same(read_state_dict(save_torch(wrapped)), state)


def test_wrapper_preference_and_module_prefix(save_torch: Callable[..., Path]) -> None:
    state = _small_state()
    other = {k: v + 1 for k, v in state.items()}
    prefixed = OrderedDict((f"module.{k}", FakeTensor.of(v)) for k, v in state.items())
    wrapped = {"state_dict_ema": _as_fake(other), "model": _as_fake(other), "state_dict": prefixed}
    _assert_same(read_state_dict(save_torch(wrapped, name="a.pth")), state)
    _assert_same(
        read_state_dict(
            save_torch({"state_dict_ema": _as_fake(other), "model": _as_fake(state)}, name="b.pth")
        ),
        state,
    )
    _assert_same(
        read_state_dict(save_torch({"state_dict_ema": _as_fake(state)}, name="c.pth")), state
    )


def test_module_prefix_stripped_in_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    state = _small_state()
    path = tmp_path / "ddp.safetensors"
    save_file({f"module.{k}": v for k, v in state.items()}, str(path))
    got = read_state_dict(path)
    assert sorted(got) == sorted(state)
    for key, value in state.items():
        assert got[key].dtype == value.dtype
        np.testing.assert_array_equal(got[key], value)


# --------------------------------------------------------------------------------------------
# Error paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing.pth", "missing.safetensors"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(FileNotFoundError, match="missing") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["weights.h5", "weights.npz", "weights", "weights.tar"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(ValueError, match="suffix") as info:
        read_state_dict(path)
    for suffix in SUPPORTED_SUFFIXES:
        assert suffix in str(info.value)


def test_directory_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "dir.pth"
    folder.mkdir()
    with pytest.raises(ValueError, match="directory"):
        read_state_dict(folder)


@pytest.mark.parametrize("keep", [0, 3, 40, 0.5, -1, -22])
def test_truncated_pth(save_torch: Callable[..., Path], tmp_path: Path, keep: float) -> None:
    data = save_torch(_as_fake(_small_state())).read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[:cut])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(bad)
    assert isinstance(info.value, ValueError)
    assert str(bad) in str(info.value)


def test_corrupted_storage_bytes(save_torch: Callable[..., Path]) -> None:
    path = save_torch(_as_fake(_small_state()))
    data = bytearray(path.read_bytes())
    start = data.index(b"archive/data/0") + len(b"archive/data/0")
    data[start + 4] ^= 0xFF  # inside the first storage's bytes: CRC mismatch
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_storage_record_too_short(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch_mod = _install_fake_torch(monkeypatch)
    data_pkl, records = _pickle_like_torch(_as_fake(_small_state()), torch_mod)
    records["0"] = records["0"][:-4]
    path = _write_zip(tmp_path / "short.pth", data_pkl, records)
    with pytest.raises(ValueError, match="expected") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_missing_storage_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    torch_mod = _install_fake_torch(monkeypatch)
    data_pkl, records = _pickle_like_torch(_as_fake(_small_state()), torch_mod)
    del records["1"]
    path = _write_zip(tmp_path / "gap.pth", data_pkl, records)
    with pytest.raises(ValueError, match="archive/data/1"):
        read_state_dict(path)


def test_view_outside_storage_rejected(save_torch: Callable[..., Path]) -> None:
    storage = FakeStorage(np.arange(4, dtype=np.float32))
    path = save_torch({"evil": FakeTensor(storage, (1000, 1000), stride=(1000, 1))})
    with pytest.raises(ValueError, match="exceeds its storage"):
        read_state_dict(path)


def _disallowed_pickle(marker: Path) -> bytes:
    # Protocol-0 opcodes for: os.system("touch <marker>")
    return b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."


@pytest.mark.parametrize("with_zip", [True, False])
def test_disallowed_global_refused(tmp_path: Path, with_zip: bool) -> None:
    marker = tmp_path / "pwned"
    payload = _disallowed_pickle(marker)
    if with_zip:
        path = _write_zip(tmp_path / "evil.pth", payload, {})
    else:
        path = tmp_path / "evil.pth"
        path.write_bytes(payload)
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    if with_zip:
        assert isinstance(info.value, DisallowedGlobalError)
        assert isinstance(info.value, pickle.UnpicklingError)
        assert "os.system" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists(), "the pickle's payload must never run"


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "eval"), ("argparse", "Namespace"), ("torch", "load"), ("torch._utils", "x")],
)
def test_other_globals_refused(tmp_path: Path, module: str, name: str) -> None:
    payload = f"c{module}\n{name}\n)R.".encode()
    path = _write_zip(tmp_path / "evil.pt", payload, {})
    with pytest.raises(DisallowedGlobalError, match=re.escape(f"{module}.{name}")):
        read_state_dict(path)


def test_legacy_pickle_format_rejected(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps({"magic": 0x1950A86A20F9469CFC6C}, protocol=2))
    with pytest.raises(ValueError, match="legacy") as info:
        read_state_dict(path)
    assert "safetensors" in str(info.value)


def test_zip_without_data_pkl(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    with pytest.raises(ValueError, match=r"data\.pkl") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"hello, world", b"\x00" * 64])
def test_not_a_zip(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "obj",
    [
        [1, 2, 3],
        {},
        {"epoch": 3, "optimizer": {"lr": 0.1}},
    ],
)
def test_no_tensor_dict(save_torch: Callable[..., Path], obj: Any) -> None:
    with pytest.raises(ValueError, match="checkpoint"):
        read_state_dict(save_torch(obj))


def test_mixed_dict_names_non_tensor_entries(save_torch: Callable[..., Path]) -> None:
    obj = {**_as_fake(_small_state()), "epoch": 3}
    with pytest.raises(ValueError, match="'epoch'"):
        read_state_dict(save_torch(obj))


@pytest.mark.parametrize(
    "content",
    [b"garbage", b"", b"\xff" * 8 + b"{}", b"\x08\x00\x00\x00\x00\x00\x00\x00not json"],
)
def test_garbage_safetensors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert isinstance(info.value, CheckpointError)
    assert str(path) in str(info.value)


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "cut.safetensors"
    shutil.copyfile(COMPACT_WEIGHTS, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_bfloat16_safetensors(tmp_path: Path) -> None:
    import json
    import struct

    expected = np.array([[1.0, -2.5], [0.15625, 8.0]], dtype=np.float32)
    bits = (expected.view(np.uint32) >> 16).astype("<u2")
    ints = np.array([3, 4], dtype="<i8")
    header = {
        "__metadata__": {"format": "pt"},
        "w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
        "n": {"dtype": "I64", "shape": [2], "data_offsets": [8, 24]},
    }
    head = json.dumps(header).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(head)) + head + bits.tobytes() + ints.tobytes())
    got = read_state_dict(path)
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"], expected)
    assert got["n"].dtype == np.int64
    np.testing.assert_array_equal(got["n"], [3, 4])
