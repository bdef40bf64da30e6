"""The worker protocol carries plain data only and refuses anything else."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from autograder.sandbox import protocol
from autograder.errors import ProtocolError


def roundtrip(message, limit=1 << 20):
    return protocol.read(io.BytesIO(protocol.encode(message)), limit)


def test_plain_values_and_arrays_round_trip():
    msg = {"a": [1, 2.5, "x", None, True], "arr": np.arange(6, dtype=np.int64).reshape(2, 3),
           "f": np.linspace(0, 1, 4, dtype=np.float32)}
    out = roundtrip(msg)
    assert out["a"] == [1, 2.5, "x", None, True]
    assert np.array_equal(out["arr"], msg["arr"]) and out["arr"].dtype == np.int64
    assert out["f"].dtype == np.float32


@pytest.mark.parametrize("value", [object(), np.array([object()], dtype=object), {1, 2}, b"bytes"])
def test_objects_cannot_cross(value):
    with pytest.raises(ProtocolError):
        protocol.encode({"v": value})


def test_nan_is_never_encoded():
    with pytest.raises(ValueError, match="(?i)nan|out of range"):
        protocol.encode({"v": float("nan")})


def test_nan_in_a_forged_header_is_refused():
    header = b'{"body": {"v": NaN}, "arrays": []}'
    raw = protocol.MAGIC + struct.pack("<Q", len(header)) + header
    with pytest.raises(ProtocolError):
        protocol.read(io.BytesIO(raw), 1 << 20)


def test_object_dtype_in_a_forged_header_is_refused():
    header = b'{"body": {"__array__": 0}, "arrays": [{"dtype": "|O", "shape": [1]}]}'
    raw = protocol.MAGIC + struct.pack("<Q", len(header)) + header + b"\0" * 8
    with pytest.raises(ProtocolError, match="bad array spec"):
        protocol.read(io.BytesIO(raw), 1 << 20)


def test_oversized_message_is_refused():
    with pytest.raises(ProtocolError, match="refused|exceeds"):
        roundtrip({"big": np.zeros(1000, dtype=np.float64)}, limit=2000)
