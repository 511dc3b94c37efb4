"""A readable table of an integer model file's pipeline: python -m pikelpn_jax.export.describe FILE"""

from __future__ import annotations

import sys
from typing import Any, Dict

from pikelpn_jax.export.format import FormatError, read_file


def _int(bits: int, signed: bool) -> str:
  return f"{'int' if signed else 'uint'}{bits}"


def _detail(op: Dict[str, Any], tensors: Dict[str, Any]) -> str:
  a = op["attrs"]
  parts = []
  for role, name in op["tensors"].items():
    t = tensors[name]
    parts.append(f"{role}={_int(t['bits'], t['signed'])}{list(t['shape'])}")
  if op["op"] == "conv":
    parts.append(
      f"stride {a['window_strides']} groups {a['feature_group_count']} x {_int(*a['x_bits'])}"
    )
  elif op["op"] == "dot":
    parts.append(f"x {_int(*a['x_bits'])}")
  elif op["op"] == "requant":
    how = (
      "sign"
      if a["mode"] == "sign"
      else f"(v + 2^{a['shift'] - 1}) >> {a['shift']}"
      if a.get("shift", 0) > 0
      else f"v << {-a['shift']}"
      if "shift" in a
      else "per-channel shift"
    )
    parts.append(f"{how}, clamp [{a['lo']}, {a['hi']}] -> {a['out_bits']}-bit")
  elif "value" in a:
    parts.append(f"{a['value']}")
  elif "shift" in a:
    parts.append(f"<< {a['shift']}")
  elif "axes" in a:
    parts.append(f"axes {a['axes']}")
  return " ".join(parts)


def describe(header: Dict[str, Any]) -> str:
  values, tensors = header["values"], header["tensors"]
  inp, out = header["input"], header["output"]
  lines = [
    f"input x: {_int(inp['bits'], inp['signed'])} {inp['shape']} = "
    f"clamp(floor(image / 2^{inp['step_exp']} + 0.5), {inp['lo']}, {inp['hi']})",
    f"{'value':<6} {'op':<10} {'layer':<24} {'range bits':>10}  detail",
  ]
  for op in header["ops"]:
    v = values[op["out"]]
    lines.append(
      f"{op['out']:<6} {op['op']:<10} {op['name']:<24} {v['bits'][0]:>10}  {_detail(op, tensors)}"
    )
  lines.append(
    f"output {out['value']}: int32 logits, real value = logit · 2^{out['scale_exp']}"
    f" (|error| <= {out['max_abs_err']:.3g})"
  )
  return "\n".join(lines)


def main(argv) -> int:
  if len(argv) != 2:
    print("error: usage: python -m pikelpn_jax.export.describe FILE", file=sys.stderr)
    return 1
  try:
    header, _ = read_file(argv[1])
  except (FormatError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(describe(header))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
