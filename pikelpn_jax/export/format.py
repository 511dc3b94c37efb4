"""The integer model file: a versioned container of bit-packed integer tensors and a JSON header.

Layout (all integers little-endian):
  bytes 0..7    magic  b"PLPNINT\\0"
  bytes 8..15   uint64 header length H
  bytes 16..    H bytes of UTF-8 JSON (the header, see docs/export.md)
  then          the payload: every tensor's bit stream, back to back, each starting on a byte

A tensor of `bits` b is stored as b-bit fields, least significant bit first, packed with no gaps
(two 4-bit values a byte, eight 1-bit values a byte, 8-bit values one a byte, 32-bit values four
bytes). Encodings:
  twos   b-bit two's complement (signed) or plain binary (unsigned)
  sign   b = 1, the binary grid {-1, +1}: bit 1 is +1, bit 0 is -1
So the payload is sum(ceil(numel·b / 8)) bytes: the model bits rounded up to a byte per tensor.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, Dict, Tuple

import numpy as np

MAGIC = b"PLPNINT\0"
FORMAT_NAME = "pikelpn-int"
FORMAT_VERSION = 1
ENCODINGS = ("twos", "sign")


class FormatError(ValueError):
  """A file that is not a readable integer model of this version."""


def field_range(bits: int, signed: bool, encoding: str = "twos") -> Tuple[int, int]:
  if encoding == "sign":
    return -1, 1
  if signed:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
  return 0, (1 << bits) - 1


def pack_bits(values: np.ndarray, bits: int, signed: bool, encoding: str = "twos") -> bytes:
  """Packs integer `values` into a little-endian bit stream of `bits`-bit fields."""
  if encoding not in ENCODINGS:
    raise FormatError(f"encoding={encoding!r} is not allowed; use one of {ENCODINGS}")
  if not isinstance(bits, int) or not 1 <= bits <= 32 or (encoding == "sign" and bits != 1):
    raise FormatError(
      f"bits={bits!r} is not allowed for encoding {encoding!r}; use 1..32 (exactly 1 for 'sign')"
    )
  v = np.asarray(values).reshape(-1).astype(np.int64)
  lo, hi = field_range(bits, signed, encoding)
  if v.size and (v.min() < lo or v.max() > hi or (encoding == "sign" and np.any(v == 0))):
    raise FormatError(
      f"values in [{v.min()}, {v.max()}] do not fit {bits}-bit "
      f"{'signed' if signed else 'unsigned'} {encoding} fields (range [{lo}, {hi}])"
    )
  u = (v > 0).astype(np.uint64) if encoding == "sign" else (v & ((1 << bits) - 1)).astype(np.uint64)
  shifts = np.arange(bits, dtype=np.uint64)
  bit_matrix = ((u[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
  return np.packbits(bit_matrix.reshape(-1), bitorder="little").tobytes()


def unpack_bits(
  data: bytes, count: int, bits: int, signed: bool, encoding: str = "twos"
) -> np.ndarray:
  """The inverse of pack_bits: `count` integers (int64)."""
  if len(data) != packed_nbytes(count, bits):
    raise FormatError(
      f"{len(data)} bytes cannot hold {count} {bits}-bit fields (need {packed_nbytes(count, bits)})"
    )
  flat = np.unpackbits(np.frombuffer(data, np.uint8), count=count * bits, bitorder="little")
  weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
  u = (flat.reshape(count, bits).astype(np.uint64) * weights[None, :]).sum(axis=1).astype(np.int64)
  if encoding == "sign":
    return np.where(u > 0, 1, -1).astype(np.int64)
  if signed:
    u = np.where(u >= (1 << (bits - 1)), u - (1 << bits), u)
  return u


def packed_nbytes(count: int, bits: int) -> int:
  return (count * bits + 7) // 8


def write_file(path: str, header: Dict[str, Any], tensors: Dict[str, np.ndarray]) -> int:
  """Writes header + packed tensors; fills header['tensors'] offsets. Returns the file size.

  header['tensors'][name] must give shape, bits, signed and encoding for every array in `tensors`.
  """
  specs = header.get("tensors", {})
  if set(specs) != set(tensors):
    raise FormatError(f"tensor specs {sorted(set(specs) ^ set(tensors))} have no array or no spec")
  payload, offset = [], 0
  for name in sorted(tensors):
    spec = specs[name]
    arr = np.asarray(tensors[name])
    if list(arr.shape) != list(spec["shape"]):
      raise FormatError(f"tensor {name!r}: array shape {arr.shape} != spec shape {spec['shape']}")
    blob = pack_bits(arr, spec["bits"], spec["signed"], spec.get("encoding", "twos"))
    spec.update(offset=offset, nbytes=len(blob))
    payload.append(blob)
    offset += len(blob)
  header = dict(header, format=FORMAT_NAME, version=FORMAT_VERSION, payload_nbytes=offset)
  raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
  with open(path, "wb") as f:
    f.write(MAGIC)
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for blob in payload:
      f.write(blob)
  return len(MAGIC) + 8 + len(raw) + offset


def read_file(path: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """(header, {name: int64 array}) of an integer model file; FormatError when unreadable."""
  with open(path, "rb") as f:
    data = f.read()
  if data[:8] != MAGIC:
    raise FormatError(
      f"{path!r} is not a pikelpn integer model (magic {data[:8]!r}, expected {MAGIC!r})"
    )
  (hlen,) = struct.unpack("<Q", data[8:16])
  try:
    header = json.loads(data[16 : 16 + hlen].decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise FormatError(f"{path!r}: unreadable header ({e})") from None
  if header.get("format") != FORMAT_NAME or header.get("version") != FORMAT_VERSION:
    raise FormatError(
      f"{path!r}: format {header.get('format')!r} version {header.get('version')!r}; "
      f"this reader supports {FORMAT_NAME!r} version {FORMAT_VERSION}"
    )
  payload = data[16 + hlen :]
  if len(payload) != header["payload_nbytes"]:
    raise FormatError(
      f"{path!r}: payload is {len(payload)} bytes, header says "
      f"{header['payload_nbytes']} (truncated or padded file)"
    )
  arrays = {}
  for name, spec in header["tensors"].items():
    count = int(math.prod(spec["shape"]))
    blob = payload[spec["offset"] : spec["offset"] + spec["nbytes"]]
    arrays[name] = unpack_bits(
      blob, count, spec["bits"], spec["signed"], spec.get("encoding", "twos")
    ).reshape(spec["shape"])
  return header, arrays
