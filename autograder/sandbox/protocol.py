"""Plain-data messages between the harness and a worker: no pickle, no objects.

A message is ``MAGIC``, an 8-byte little-endian header length, a strict-JSON header, then
the raw bytes of each array the header lists (dtype from a short allow-list, shape).  Inside
the header, ``{"__array__": i}`` stands for the i-th array.  Decoding builds nothing but
dicts, lists, str, int, float, bool, None and numpy arrays of plain numeric dtypes.
"""
from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

import numpy as np

from autograder.errors import ProtocolError

MAGIC = b"AGW1"
ALLOWED_DTYPES = ("|b1", "<i8", "<i4", "<f4", "<f8")
_ARRAY_KEY = "__array__"


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name} in a message")


def _flatten(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.str not in ALLOWED_DTYPES:
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise ProtocolError(f"array dtype {value.dtype} cannot cross the worker boundary")
        arrays.append(arr)
        return {_ARRAY_KEY: len(arrays) - 1}
    if isinstance(value, dict):
        return {str(k): _flatten(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, arrays) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise ProtocolError(f"a {type(value).__name__} cannot cross the worker boundary")


def encode(message: dict) -> bytes:
    arrays: list[np.ndarray] = []
    body = _flatten(message, arrays)
    header = json.dumps(
        {"body": body, "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in arrays]},
        allow_nan=False, separators=(",", ":"),
    ).encode()
    parts = [MAGIC, struct.pack("<Q", len(header)), header]
    parts += [a.tobytes() for a in arrays]
    return b"".join(parts)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _restore(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_KEY}:
            index = value[_ARRAY_KEY]
            if type(index) is not int or not 0 <= index < len(arrays):
                raise ProtocolError(f"bad array reference {index!r}")
            return arrays[index]
        return {k: _restore(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v, arrays) for v in value]
    return value


def read(stream: BinaryIO, max_bytes: int) -> dict:
    """Read one message; anything malformed or over ``max_bytes`` raises ProtocolError."""
    if _read_exact(stream, len(MAGIC)) != MAGIC:
        raise ProtocolError("message does not start with the protocol's magic bytes")
    (length,) = struct.unpack("<Q", _read_exact(stream, 8))
    if length > max_bytes:
        raise ProtocolError(f"message header of {length} bytes exceeds the {max_bytes}-byte limit")
    try:
        header = json.loads(_read_exact(stream, length), parse_constant=_reject_constant)
    except ValueError as exc:
        raise ProtocolError(f"message header is not strict JSON: {exc}") from None
    specs = header.get("arrays") if isinstance(header, dict) else None
    if not isinstance(specs, list) or "body" not in header:
        raise ProtocolError("message header lacks 'body' and 'arrays'")
    arrays, total = [], length
    for spec in specs:
        dtype, shape = (spec.get("dtype"), spec.get("shape")) if isinstance(spec, dict) else (None, None)
        if dtype not in ALLOWED_DTYPES or not isinstance(shape, list) or not all(
            type(s) is int and s >= 0 for s in shape
        ):
            raise ProtocolError(f"bad array spec {spec!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += nbytes
        if total > max_bytes:
            raise ProtocolError(f"message of over {max_bytes} bytes refused")
        arrays.append(np.frombuffer(_read_exact(stream, nbytes), dtype=dtype).reshape(shape).copy())
    return _restore(header["body"], arrays)


def write(stream: BinaryIO, message: dict) -> None:
    stream.write(encode(message))
    stream.flush()
