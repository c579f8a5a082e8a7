"""Deterministic pseudo-randomness: pure functions of (seed, key, index), vectorised with numpy.

Every random choice of the simulator is a hash of the seed, a stable key (a device id, a ward
code, a purpose name) and an index (a time slot, a reading number), so any value can be
recomputed alone, in any order, and the same seed always gives the same city.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
_M64 = (1 << 64) - 1


def key64(*parts: object) -> int:
    """A stable 64-bit key of strings/ints (not Python's salted ``hash``)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _mix_int(x: int) -> int:
    """:func:`_mix` of one number, in Python integers (the same bits)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


_SMALL = 8  # up to this many numbers, Python integers beat numpy's per-call overhead (~20x)


def uniform(key: int, index: npt.ArrayLike) -> F64:
    """Uniform [0, 1) numbers, one per ``index`` (integers), for the 64-bit ``key``."""
    raw = np.asarray(index, dtype=np.int64)
    if raw.size <= _SMALL:  # the live simulator's one-reading calls: same numbers, faster
        k0, k7 = key & _M64, (key >> 7) & _M64
        vals = [
            (_mix_int((_mix_int((int(i) & _M64) ^ k0) + k7) & _M64) >> 11) * (1.0 / (1 << 53))
            for i in raw.reshape(-1).tolist()
        ]
        return np.array(vals, dtype=np.float64).reshape(raw.shape)
    idx = raw.astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _mix(idx ^ np.uint64(key & _M64))
        h = _mix(h + np.uint64((key >> 7) & _M64))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniform1(key: int, index: int) -> float:
    return float(uniform(key, np.array([index]))[0])


def normal(key: int, index: npt.ArrayLike) -> F64:
    """Standard normal numbers (Box-Muller on two hashed uniforms)."""
    idx = np.asarray(index, dtype=np.int64)
    u1 = uniform(key, idx * 2)
    u2 = uniform(key, idx * 2 + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)


def smooth(key: int, t: F64, period: float) -> F64:
    """Smooth noise in [-1, 1]: hashed knots every ``period`` seconds, cosine-interpolated."""
    x = np.asarray(t, dtype=np.float64) / period
    k = np.floor(x)
    f = x - k
    a = uniform(key, k.astype(np.int64)) * 2 - 1
    b = uniform(key, k.astype(np.int64) + 1) * 2 - 1
    w = (1 - np.cos(np.pi * f)) / 2
    return a * (1 - w) + b * w
