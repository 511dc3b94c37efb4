"""The integer model file: bit packing and the container (pure NumPy, fast)."""

import numpy as np
import pytest

from pikelpn_jax.export.format import (
  FORMAT_VERSION,
  MAGIC,
  FormatError,
  pack_bits,
  packed_nbytes,
  read_file,
  unpack_bits,
  write_file,
)


def test_two_4bit_values_a_byte_and_eight_1bit_values_a_byte():
  # 4-bit two's complement, low nibble first: 1 -> 0x1, -2 -> 0xE.
  assert pack_bits(np.array([1, -2, 7, -7]), 4, True) == bytes([0xE1, 0x97])
  # Binary grid: bit 1 is +1, least significant bit first.
  assert pack_bits(np.array([1, -1, -1, 1, 1, 1, -1, 1, -1]), 1, True, "sign") == bytes(
    [0b10111001, 0b0]
  )
  assert packed_nbytes(9, 1) == 2 and packed_nbytes(3, 4) == 2 and packed_nbytes(5, 32) == 20


@pytest.mark.parametrize(
  "bits,signed,enc",
  [
    (1, True, "sign"),
    (2, True, "twos"),
    (3, False, "twos"),
    (4, True, "twos"),
    (8, False, "twos"),
    (16, True, "twos"),
    (32, True, "twos"),
  ],
)
def test_roundtrip_every_width(bits, signed, enc):
  rng = np.random.default_rng(bits)
  if enc == "sign":
    v = rng.choice([-1, 1], 37)
  else:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    v = rng.integers(lo, hi, 37, endpoint=True)
    v[:2] = lo, hi
  blob = pack_bits(v, bits, signed, enc)
  assert len(blob) == packed_nbytes(37, bits)
  np.testing.assert_array_equal(unpack_bits(blob, 37, bits, signed, enc), v)


@pytest.mark.parametrize(
  "v,bits,signed,enc,msg",
  [
    ([8], 4, True, "twos", r"do not fit 4-bit signed"),
    ([-1], 4, False, "twos", r"do not fit 4-bit unsigned"),
    ([0], 1, True, "sign", r"do not fit 1-bit"),
    ([1], 2, True, "sign", r"bits=2 is not allowed"),
    ([1], 4, True, "gray", r"encoding='gray' is not allowed"),
  ],
)
def test_bad_values_are_refused(v, bits, signed, enc, msg):
  with pytest.raises(FormatError, match=msg):
    pack_bits(np.array(v), bits, signed, enc)


def _write(path):
  header = {
    "tensors": {
      "w": {"shape": [2, 3], "bits": 4, "signed": True},
      "b": {"shape": [3], "bits": 1, "signed": True, "encoding": "sign"},
    }
  }
  arrays = {"w": np.arange(-3, 3).reshape(2, 3), "b": np.array([1, -1, 1])}
  return write_file(str(path), header, arrays), arrays


def test_container_roundtrip_and_size(tmp_path):
  size, arrays = _write(tmp_path / "m.plpn")
  header, back = read_file(str(tmp_path / "m.plpn"))
  assert header["version"] == FORMAT_VERSION and header["payload_nbytes"] == 3 + 1
  raw = (tmp_path / "m.plpn").read_bytes()
  assert size == len(raw) and raw[:8] == MAGIC
  for k in arrays:
    np.testing.assert_array_equal(back[k], arrays[k])


@pytest.mark.parametrize(
  "corrupt,msg",
  [
    (lambda raw: b"NOTAPLPN" + raw[8:], "is not a pikelpn integer model"),
    (lambda raw: raw[:-1], "truncated or padded"),
    (lambda raw: raw.replace(b'"version":1', b'"version":9'), "version 9"),
  ],
)
def test_unreadable_files_are_refused(tmp_path, corrupt, msg):
  _write(tmp_path / "m.plpn")
  (tmp_path / "bad.plpn").write_bytes(corrupt((tmp_path / "m.plpn").read_bytes()))
  with pytest.raises(FormatError, match=msg):
    read_file(str(tmp_path / "bad.plpn"))
