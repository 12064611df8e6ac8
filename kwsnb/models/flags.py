"""Typed, checked reading of an architecture's flags: every error names the model and the flag."""
from __future__ import annotations

from typing import Any

import keras
import numpy as np


class Flags:
    """Typed, checked access to a model's flags; errors are ValueErrors naming the flag.

    Accepts the seed's forms: lists or a single value for list flags, ``(3, 1)`` kernel sizes
    and ``(2, 2)`` strides (time first; kwsnb convolves over time with the MFCCs as channels,
    as the seed does with its ``[time, 1, dct]`` reshape).
    """

    def __init__(self, model: str, flags: dict[str, Any]):
        self.model = model
        self.flags = flags

    def error(self, key: str, problem: str) -> ValueError:
        return ValueError(f"{self.model} flag {key}={self.flags[key]!r}: {problem}")

    def __getitem__(self, key: str):
        return self.flags[key]

    def number(self, key: str, minimum: float = 0.0, strictly: bool = True) -> float:
        value = self.flags[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise self.error(key, "must be a number")
        if value < minimum or (strictly and value == minimum):
            raise self.error(key, f"must be {'>' if strictly else '>='} {minimum}")
        return float(value)

    def int(self, key: str, minimum: int = 1, value=None) -> int:
        value = self.flags[key] if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) \
                or int(value) != value:
            raise self.error(key, "must be an integer")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}")
        return int(value)

    def bool(self, key: str) -> bool:
        value = self.flags[key]
        if value not in (True, False, 0, 1):
            raise self.error(key, "must be 0/1 or a bool")
        return bool(value)

    def rate(self, key: str, value=None) -> float:
        value = self.flags[key] if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise self.error(key, "must be a rate in [0, 1)")
        return float(value)

    def list(self, key: str, length: int | None = None) -> list:
        value = self.flags[key]
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if length is not None and len(items) != length:
            raise self.error(key, f"needs {length} entries (one per layer), got {len(items)}")
        return items

    def ints(self, key: str, length: int | None = None, minimum: int = 1) -> list[int]:
        return [self.int(key, minimum, value=v) for v in self.list(key, length)]

    def rates(self, key: str, length: int | None = None) -> list[float]:
        return [self.rate(key, value=v) for v in self.list(key, length)]

    def activation(self, key: str, value=None) -> str:
        value = self.flags[key] if value is None else value
        try:
            keras.activations.get(value)
        except (ValueError, TypeError):
            raise self.error(key, f"{value!r} is not a Keras activation") from None
        return value

    def time_size(self, key: str, value=None) -> int:
        """A kernel size: ``k``, ``(k,)`` or the seed's ``(k, 1)``."""
        value = self.flags[key] if value is None else value
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and value[1] != 1:
                raise self.error(key, "kernels span time only: use (k, 1); kwsnb, like the seed, "
                                      "treats the MFCCs as channels")
            if len(value) not in (1, 2):
                raise self.error(key, "use k or (k, 1)")
            value = value[0]
        return self.int(key, value=value)

    def time_stride(self, key: str, value=None) -> int:
        """A stride: ``s`` or the seed's ``(s, s_freq)``; ``s_freq`` acts on the seed's
        frequency axis of size 1, where it changes nothing, so it is ignored."""
        value = self.flags[key] if value is None else value
        if isinstance(value, (list, tuple)):
            if len(value) not in (1, 2):
                raise self.error(key, "use s or (s, s_freq)")
            value = value[0]
        return self.int(key, value=value)

    def time_sizes(self, key: str, length: int | None = None) -> list[int]:
        return [self.time_size(key, v) for v in self._entries(key, length)]

    def time_strides(self, key: str, length: int | None = None) -> list[int]:
        return [self.time_stride(key, v) for v in self._entries(key, length)]

    def _entries(self, key: str, length: int | None) -> list:
        items = self.list(key)
        # A one-layer list of pairs may arrive flattened: "(3,1)" parses to [3, 1].
        if length == 1 and len(items) == 2 and not any(isinstance(v, (list, tuple))
                                                       for v in items):
            items = [tuple(items)]
        if length is not None and len(items) != length:
            raise self.error(key, f"needs {length} entries (one per layer), got {len(items)}")
        return items
