"""Inputs to the compiled core, and results back in the caller's kind of array.

Every array argument may be a numpy array or a CPU torch tensor of a floating dtype. The core
reads C-contiguous float32: such inputs are passed without a copy; anything else (float16,
bfloat16, float64, non-contiguous or negatively strided views) is converted first — except where
a call reads 16-bit data as it is (sixteen_bit: the keys and values of attention; keys_arg: the
keys of leverage_scores, universal_set, heavy_entries with p = 2 and StreamSelector.push).
"""
from __future__ import annotations

import numbers
import sys
from typing import Any, Optional, Tuple

import numpy as np

from ._levattn import DEFAULT_RCOND, InputError


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (torch is never imported here: a tensor implies it is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_tensor(x: Any, role: str) -> None:
    """Raises InputError unless x is a dense floating-point CPU tensor that does not require grad."""
    if x.device.type != "cpu":
        raise InputError(f"{role}: expected a CPU tensor, got one on device {x.device}")
    if x.requires_grad:
        raise InputError(f"{role}: the tensor requires grad; levattn.torch.attention is the "
                         "differentiable call (or pass tensor.detach())")
    if x.layout != sys.modules["torch"].strided:
        raise InputError(f"{role}: expected a dense (strided) tensor, got layout {x.layout}")
    if not x.is_floating_point():
        raise InputError(f"{role}: expected floating-point data, got dtype {x.dtype}")


def _to_numpy(x: Any, role: str) -> np.ndarray:
    if x is None:
        raise InputError(f"{role}: expected an array, got None")
    if is_tensor(x):
        _check_tensor(x, role)
        if x.dtype == sys.modules["torch"].bfloat16:  # numpy has no bfloat16
            x = x.float()
        return x.resolve_neg().resolve_conj().numpy()  # views with a lazy negation or conjugation
    if isinstance(x, np.ndarray):
        return x
    raise InputError(f"{role}: expected a numpy array or a torch tensor, got {type(x).__name__}")


def sixteen_bit(x: Any, role: str) -> Optional[tuple]:
    """("float16" or "bfloat16", a C-contiguous numpy array of x's 16-bit data) for a numpy float16
    array or a CPU float16/bfloat16 torch tensor (bfloat16 seen as int16, numpy having no bfloat16);
    None for anything else. Contiguous inputs are not copied."""
    if is_tensor(x):
        torch = sys.modules["torch"]
        if x.dtype not in (torch.float16, torch.bfloat16):
            return None
        _check_tensor(x, role)
        name = "float16" if x.dtype == torch.float16 else "bfloat16"
        t = x.contiguous()
        return name, (t.numpy() if name == "float16" else t.view(torch.int16).numpy())
    if isinstance(x, np.ndarray) and x.dtype == np.float16:
        return "float16", np.require(x, np.float16, ["C_CONTIGUOUS", "ALIGNED"])
    return None


def _as_dtype(x: Any, role: str, dtype: type) -> np.ndarray:
    a = _to_numpy(x, role)
    if a.dtype.kind != "f":
        raise InputError(f"{role}: expected floating-point data, got dtype {a.dtype}")
    return np.require(a, dtype, ["C_CONTIGUOUS", "ALIGNED"])


def as_float32(x: Any, role: str) -> np.ndarray:
    """x as an aligned C-contiguous float32 numpy array (x itself, or a view of its memory, when it
    already is one)."""
    return _as_dtype(x, role, np.float32)


def as_float64(x: Any, role: str) -> np.ndarray:
    """x as an aligned C-contiguous float64 numpy array (for log normalisers)."""
    return _as_dtype(x, role, np.float64)


def as_matrix(x: Any, role: str, ndims: tuple = (2,)) -> np.ndarray:
    """as_float32 with the number of dimensions checked against `ndims`."""
    a = as_float32(x, role)
    if a.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise InputError(f"{role}: expected {want} dimensions, got shape {tuple(a.shape)}")
    return a


def keys_arg(x: Any, role: str, ndims: tuple = (2,)) -> Tuple[np.ndarray, str]:
    """(array, element type) for keys the core reads as they are: a numpy float16 array or a CPU
    float16/bfloat16 tensor stays 16-bit ("float16"/"bfloat16", see sixteen_bit); anything else is
    as_matrix's float32 ("float32")."""
    s = sixteen_bit(x, role)
    if s is None:
        return as_matrix(x, role, ndims), "float32"
    name, a = s
    if a.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise InputError(f"{role}: expected {want} dimensions, got shape {tuple(a.shape)}")
    return a, name


def like(a: Optional[np.ndarray], torch_out: bool) -> Any:
    """A result array as a torch tensor (sharing memory) when the inputs were tensors."""
    if a is None or not torch_out:
        return a
    return sys.modules["torch"].from_numpy(a)


def threads_arg(threads: Optional[int]) -> int:
    """The core's thread count: 0 for None (every core); more than the cores are not used."""
    if threads is None:
        return 0
    return integer_arg(threads, "threads", 1, 2**31 - 1)


def integer_arg(value: Any, name: str, minimum: int, maximum: int = 2**63 - 1) -> int:
    """value as an int in [minimum, maximum] (the C++ type's range), else InputError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
        raise InputError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def seed_arg(value: Any) -> int:
    return integer_arg(value, "seed", 0, 2**64 - 1)


def real_arg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    return float(value)


def rcond_arg(rcond: Optional[float]) -> float:
    if rcond is None:
        return DEFAULT_RCOND
    r = real_arg(rcond, "rcond")
    if not 0.0 < r < 1.0:
        raise InputError(f"rcond must lie in (0, 1), got {rcond!r}")
    return r
