"""Read PyTorch-layout checkpoints into NumPy arrays without importing PyTorch.

The entry point is :func:`read_state_dict`, which returns a plain ``dict`` mapping parameter
names (PyTorch ``state_dict`` keys, e.g. ``"conv_stem.weight"``) to contiguous
:class:`numpy.ndarray` values.  Two on-disk formats are understood:

* ``.safetensors`` files, read with :func:`safetensors.numpy.load_file`.
* ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` files in the zip format that ``torch.save`` writes by
  default since PyTorch 1.6: a zip archive holding ``<archive>/data.pkl`` (a pickle of the saved
  object in which every tensor refers to a raw storage by key), ``<archive>/data/<key>`` (the raw
  bytes of each storage) and, for recent versions, ``<archive>/byteorder``.

The pickle is read with a restricted :class:`pickle.Unpickler` that only resolves the handful of
globals a tensor checkpoint needs (tensor/parameter rebuild functions, ``OrderedDict`` and the
storage classes).  Any other global -- ``os.system``, ``builtins.eval``, a training script's
``argparse.Namespace`` -- is refused with :class:`DisallowedGlobalError` before anything is
called, so reading an untrusted checkpoint cannot run arbitrary code.

Conversions and conventions:

* dtypes are preserved (``float32`` stays ``float32``, ``num_batches_tracked`` stays ``int64``),
  except ``bfloat16``, which NumPy has no native type for: it is widened to ``float32`` by
  shifting each 16-bit pattern into the upper half of a 32-bit word (exact, no rounding).
* Non-contiguous tensors (views with strides / a storage offset) are materialised as
  C-contiguous copies; tensors sharing one storage become independent arrays.
* Big-endian archives (``byteorder`` entry says ``big``) are byte-swapped to native order.  An
  archive without a ``byteorder`` entry is taken to be little endian, as PyTorch does.
* A training checkpoint that wraps the weights (``{"state_dict": ..., "epoch": ...}``) is
  unwrapped: the first of the keys ``state_dict``, ``model``, ``state_dict_ema`` that holds a
  dict of tensors is used (so the raw weights are preferred over the EMA weights).
* If *every* key starts with ``module.`` (a model saved from ``DataParallel`` /
  ``DistributedDataParallel``), that prefix is stripped once from all keys.
* ``num_batches_tracked`` buffers are kept; the caller decides whether it needs them.

Errors: a missing file raises :class:`FileNotFoundError`; an unsupported suffix raises
:class:`ValueError` listing :data:`SUPPORTED_SUFFIXES`; a corrupt, truncated or unrecognised file
raises :class:`CheckpointError` (a :class:`ValueError`) naming the path and the problem.  Nothing
is ever partially returned.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_dtypes  # noqa: F401  (registers bfloat16 so safetensors can return it)
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

__all__ = [
    "SAFETENSORS_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "TORCH_SUFFIXES",
    "CheckpointError",
    "DisallowedGlobalError",
    "read_state_dict",
]

SAFETENSORS_SUFFIXES: tuple[str, ...] = (".safetensors",)
"""Suffixes read as safetensors files."""

TORCH_SUFFIXES: tuple[str, ...] = (".pth", ".pth.tar", ".pt", ".bin", ".ckpt")
"""Suffixes read as ``torch.save`` zip archives."""

SUPPORTED_SUFFIXES: tuple[str, ...] = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
"""Every suffix :func:`read_state_dict` accepts (compared case-insensitively)."""

WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model", "state_dict_ema")
"""Keys of a training-checkpoint dict that may hold the weights, in order of preference."""

_DDP_PREFIX = "module."


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, unsafe or not a checkpoint at all."""


class DisallowedGlobalError(CheckpointError, pickle.UnpicklingError):
    """The checkpoint's pickle references a global outside the allow-list.

    This is both a :class:`ValueError` (via :class:`CheckpointError`) and a
    :class:`pickle.UnpicklingError`, so either may be caught.
    """


# --------------------------------------------------------------------------------------------
# Restricted unpickling of the torch zip format
# --------------------------------------------------------------------------------------------


class _StorageType:
    """Stand-in for a ``torch.*Storage`` class: just the NumPy dtype of its elements."""

    __slots__ = ("bfloat16", "dtype", "name")

    def __init__(self, name: str, dtype: np.dtype | None, *, bfloat16: bool = False) -> None:
        self.name = name
        self.dtype = dtype
        self.bfloat16 = bfloat16

    def __repr__(self) -> str:
        return f"<storage type {self.name}>"


def _storage_types() -> dict[tuple[str, str], _StorageType]:
    typed = {
        "FloatStorage": np.dtype(np.float32),
        "DoubleStorage": np.dtype(np.float64),
        "HalfStorage": np.dtype(np.float16),
        "LongStorage": np.dtype(np.int64),
        "IntStorage": np.dtype(np.int32),
        "ShortStorage": np.dtype(np.int16),
        "CharStorage": np.dtype(np.int8),
        "ByteStorage": np.dtype(np.uint8),
        "BoolStorage": np.dtype(np.bool_),
    }
    table: dict[tuple[str, str], _StorageType] = {
        ("torch", name): _StorageType(f"torch.{name}", dtype) for name, dtype in typed.items()
    }
    # Stored as raw uint16 bit patterns; widened to float32 when the storage is materialised.
    table["torch", "BFloat16Storage"] = _StorageType(
        "torch.BFloat16Storage", np.dtype(np.uint16), bfloat16=True
    )
    # An untyped storage is a byte buffer; its numel in the persistent id counts bytes.
    untyped = _StorageType("torch.UntypedStorage", np.dtype(np.uint8))
    table["torch", "UntypedStorage"] = untyped
    table["torch.storage", "UntypedStorage"] = untyped
    # A bare TypedStorage carries no element type, so it is recognised but cannot be read.
    typed_storage = _StorageType("torch.TypedStorage", None)
    table["torch", "TypedStorage"] = typed_storage
    table["torch.storage", "TypedStorage"] = typed_storage
    return table


_STORAGE_TYPES = _storage_types()


class _Storage:
    """A materialised storage: a flat, native-endian, read-only NumPy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _as_index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, int):  # torch.Size is a tuple; tolerate a bare int defensively
        value = (value,)
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise pickle.UnpicklingError(f"invalid tensor {what}: {value!r}")
    return tuple(value)


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any
) -> np.ndarray:
    """Rebuild a tensor from its storage as a contiguous array (``_rebuild_tensor[_v2]``).

    Extra arguments of ``_rebuild_tensor_v2`` (``requires_grad``, ``backward_hooks``,
    ``metadata``) are ignored.  The view is bounds-checked against the storage before
    :func:`numpy.lib.stride_tricks.as_strided` is applied, so a malformed size/stride cannot
    read outside the buffer.
    """
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a non-storage object {storage!r}")
    if (
        not isinstance(storage_offset, int)
        or isinstance(storage_offset, bool)
        or storage_offset < 0
    ):
        raise pickle.UnpicklingError(f"invalid storage offset {storage_offset!r}")
    shape = _as_index_tuple(size, "size")
    strides = _as_index_tuple(stride, "stride")
    if len(shape) != len(strides):
        raise pickle.UnpicklingError(f"size {shape} and stride {strides} differ in length")
    flat = storage.array
    if any(dim == 0 for dim in shape):
        return np.zeros(shape, dtype=flat.dtype)
    last = storage_offset + sum((dim - 1) * st for dim, st in zip(shape, strides, strict=True))
    if last >= flat.size:
        raise pickle.UnpicklingError(
            f"tensor view (offset {storage_offset}, size {shape}, stride {strides}) exceeds "
            f"its storage of {flat.size} elements"
        )
    view = np.lib.stride_tricks.as_strided(
        flat[storage_offset:],
        shape=shape,
        strides=tuple(st * flat.itemsize for st in strides),
        writeable=False,
    )
    return np.array(view, order="C", copy=True)


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_ignored: Any) -> np.ndarray:
    """Unwrap an ``nn.Parameter`` (``torch._utils._rebuild_parameter``) to its data."""
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError(f"parameter rebuilt from a non-tensor object {data!r}")
    return data


_ALLOWED_CALLABLES: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for ``data.pkl`` that resolves only allow-listed globals.

    Tensors come back as NumPy arrays; storages are loaded lazily from the zip archive and
    cached by key so that views of one storage read it only once.
    """

    def __init__(
        self,
        file: io.BufferedIOBase,
        load_storage: Callable[[_StorageType, str, int], _Storage],
    ) -> None:
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` from the allow-list or raise :class:`DisallowedGlobalError`."""
        key = (module, name)
        if key in _ALLOWED_CALLABLES:
            return _ALLOWED_CALLABLES[key]
        if key in _STORAGE_TYPES:
            return _STORAGE_TYPES[key]
        raise DisallowedGlobalError(
            f"global '{module}.{name}' is not allowed in a weights checkpoint "
            "(only tensors, storages and OrderedDict are accepted)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        """Load the storage named by ``('storage', type, key, location, numel)``."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names a non-storage type {storage_type!r}")
        if storage_type.dtype is None:
            raise pickle.UnpicklingError(
                f"{storage_type.name} without an element type is not supported"
            )
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        if key not in self._storages:
            self._storages[key] = self._load_storage(storage_type, key, numel)
        return self._storages[key]


def _find_archive_prefix(zf: zipfile.ZipFile) -> str:
    """Return the ``<archive>/`` folder holding ``data.pkl`` (the single top-level record)."""
    candidates = [
        name[: -len("data.pkl")]
        for name in zf.namelist()
        if name.endswith("/data.pkl") and name.count("/") == 1
    ]
    if "data.pkl" in zf.namelist():
        candidates.append("")
    if not candidates:
        raise CheckpointError(
            "the zip archive has no '<archive>/data.pkl' record, so it is not a torch.save "
            "checkpoint"
        )
    if len(candidates) > 1:
        raise CheckpointError(f"the zip archive holds several data.pkl records: {candidates}")
    prefix = candidates[0]
    if f"{prefix}constants.pkl" in zf.namelist():
        raise CheckpointError(
            "this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; "
            "save the model's state_dict() with torch.save instead"
        )
    return prefix


def _read_byteorder(zf: zipfile.ZipFile, prefix: str) -> str:
    name = f"{prefix}byteorder"
    if name not in zf.namelist():
        return "little"
    order = zf.read(name).decode("ascii", errors="replace").strip()
    if order not in ("little", "big"):
        raise CheckpointError(f"unknown byte order {order!r} in '{name}'")
    return order


def _read_torch_zip(path: Path) -> Any:
    """Unpickle the object saved in a ``torch.save`` zip archive, tensors as NumPy arrays."""
    with zipfile.ZipFile(path) as zf:
        prefix = _find_archive_prefix(zf)
        byteorder = _read_byteorder(zf, prefix)
        names = set(zf.namelist())

        def load_storage(storage_type: _StorageType, key: str, numel: int) -> _Storage:
            record = f"{prefix}data/{key}"
            if record not in names:
                raise CheckpointError(f"storage record '{record}' is missing from the archive")
            assert storage_type.dtype is not None  # checked in persistent_load
            dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
            nbytes = numel * dtype.itemsize
            raw = zf.read(record)
            if len(raw) < nbytes:
                raise CheckpointError(
                    f"storage record '{record}' holds {len(raw)} bytes, expected {nbytes} "
                    f"for {numel} elements of {storage_type.name}"
                )
            flat = np.frombuffer(raw, dtype=dtype, count=numel)
            flat = flat.astype(dtype.newbyteorder("="), copy=False)
            if storage_type.bfloat16:
                # bfloat16 is the upper half of an IEEE float32: shift the bits into place.
                flat = (flat.astype(np.uint32) << 16).view(np.float32)
            flat.flags.writeable = False
            return _Storage(flat)

        with zf.open(f"{prefix}data.pkl") as pkl:
            return _RestrictedUnpickler(pkl, load_storage).load()


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------

def _widen_bfloat16(array: np.ndarray) -> np.ndarray:
    """Turn an ``ml_dtypes.bfloat16`` array into ``float32`` (other arrays pass through).

    With ``ml_dtypes`` imported (TensorFlow/JAX do), safetensors returns ``BF16`` tensors with
    that dtype; widening keeps the result independent of what else happens to be imported.
    """
    if array.dtype.name != "bfloat16":
        return array
    return (array.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        return {k: _widen_bfloat16(v) for k, v in load_file(str(path)).items()}
    except (SafetensorError, TypeError, ValueError) as exc:
        raise CheckpointError(f"not a valid safetensors file: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Post-processing and the public entry point
# --------------------------------------------------------------------------------------------


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
    )


def _extract_state_dict(obj: Any) -> dict[str, np.ndarray]:
    """Find the ``name -> array`` mapping in an unpickled checkpoint object."""
    if _is_tensor_dict(obj) and obj:
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if _is_tensor_dict(inner) and inner:
                return dict(inner)
        bad = [
            repr(k)
            for k, v in obj.items()
            if not (isinstance(k, str) and isinstance(v, np.ndarray))
        ]
        if not obj:
            raise CheckpointError("the checkpoint holds an empty dict")
        raise CheckpointError(
            "the checkpoint is a dict but not a state dict of tensors (entries that are not "
            f"tensors: {', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}) and none of the "
            f"keys {list(WRAPPER_KEYS)} holds one"
        )
    raise CheckpointError(
        f"the checkpoint holds a {type(obj).__name__}, not a dict of tensors (a whole pickled "
        "model is not supported: save model.state_dict() instead)"
    )


def _strip_module_prefix(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if state and all(k.startswith(_DDP_PREFIX) for k in state):
        return {k[len(_DDP_PREFIX) :]: v for k, v in state.items()}
    return state


def _describe_non_zip(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return "the zip archive is truncated or corrupt"
    if head[:1] == b"\x80":
        return (
            "this is a legacy (pre-1.6, non-zip) torch.save file, which is not supported; "
            "re-save it with a recent PyTorch (torch.save(torch.load(path), path)) or convert "
            "it to .safetensors"
        )
    if not head:
        return "the file is empty"
    return "not a torch.save zip archive"


def _read_by_suffix(path: Path, suffix: str) -> dict[str, np.ndarray]:
    if suffix in SAFETENSORS_SUFFIXES:
        state = _read_safetensors(path)
        if not state:
            raise CheckpointError("the safetensors file holds no tensors")
        return state
    if not zipfile.is_zipfile(path):
        raise CheckpointError(_describe_non_zip(path))
    return _extract_state_dict(_read_torch_zip(path))


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a checkpoint's tensors into a ``dict`` of contiguous NumPy arrays.

    Args:
        path: A ``.safetensors`` file, or a ``.pth`` / ``.pth.tar`` (the official GhostNetV2
            checkpoints) / ``.pt`` / ``.bin`` / ``.ckpt`` file in the
            ``torch.save`` zip format (the default since PyTorch 1.6).  Suffixes are compared
            case-insensitively.  PyTorch is not needed.

    Returns:
        ``{name: array}`` in the file's order.  dtypes are preserved except ``bfloat16``,
        which becomes ``float32``.  Training checkpoints are unwrapped (``state_dict`` is
        preferred over ``model`` over ``state_dict_ema``) and a ``module.`` prefix present
        on every key is removed.  ``num_batches_tracked`` entries are kept.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` has an unsupported suffix (the message lists the supported ones).
        DisallowedGlobalError: the pickle references a global outside the allow-list (a
            :class:`CheckpointError` and a :class:`pickle.UnpicklingError`); nothing from the
            file is executed.
        CheckpointError: a :class:`ValueError` naming ``path`` when the file is corrupt,
            truncated, a legacy/non-zip torch file, or holds no dict of tensors.

    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "checkpoint file not found", str(p))
    if p.is_dir():
        raise CheckpointError(f"'{p}' is a directory, not a checkpoint file")
    suffix = next((s for s in SUPPORTED_SUFFIXES if p.name.lower().endswith(s)), p.suffix.lower())
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported checkpoint suffix {p.suffix!r} for '{p}'; supported suffixes: "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        return _strip_module_prefix(_read_by_suffix(p, suffix))
    except DisallowedGlobalError as exc:
        raise DisallowedGlobalError(f"refusing to load '{p}': {exc}") from exc
    except CheckpointError as exc:
        raise CheckpointError(f"cannot read checkpoint '{p}': {exc}") from exc
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"cannot read checkpoint '{p}': corrupt pickle ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise CheckpointError(
            f"cannot read checkpoint '{p}': truncated or corrupt file ({exc!r})"
        ) from exc
    except (
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        struct.error,
        RecursionError,
    ) as exc:
        raise CheckpointError(f"cannot read checkpoint '{p}': corrupt data ({exc!r})") from exc
