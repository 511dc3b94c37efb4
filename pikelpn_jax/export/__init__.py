"""Integer-only export of fully quantized models (see docs/export.md).

export_model(model, variables, probe_x, path)  -> report      (exporter.py)
load(path) -> IntegerModel; model(x) -> int32 logits          (forward.py)
assert_integer_only(fn, *args)                                (forward.py)
python -m pikelpn_jax.export --workdir DIR --out FILE          (cli.py)
python -m pikelpn_jax.export --workdir DIR --out FILE.onnx     (standard ONNX: onnx_export.py)
"""

from pikelpn_jax.export.exporter import FloatLayerError, export_model, float_layers, lower_model
from pikelpn_jax.export.format import FORMAT_VERSION, FormatError, read_file, write_file
from pikelpn_jax.export.forward import (
  IntegerModel,
  assert_integer_only,
  integer_body,
  integer_violations,
  load,
  quantize_codes,
)
from pikelpn_jax.export.values import ExportError
