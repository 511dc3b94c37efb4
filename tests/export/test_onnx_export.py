"""A tiny trained network exported to ONNX and run by onnxruntime on uint8 images: logits identical
to the integer forward, the checker passes, no float anywhere, and docs/export.md's snippet runs."""

import gzip
import os
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import optax
import pytest

from pikelpn_jax.data.sources import FMNIST_MEAN, FMNIST_STD, ArraySource
from pikelpn_jax.export import lower_model
from pikelpn_jax.export.forward import IntegerModel, device_tensors
from pikelpn_jax.export.onnx_export import (
  compare_onnx,
  float_nodes,
  input_table,
  session,
  to_onnx,
  write_onnx,
)
from tests.export.tiny_net import TinyNet

# The module fixture trains a small net and every test runs it through onnxruntime.
pytestmark = pytest.mark.slow

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "export.md")
CLASSES = 4


def quadrant_images(n, seed):
  """uint8 28×28 images padded to 32×32 (as Fashion-MNIST is), class = the bright quadrant."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 90, (n, 28, 28), np.uint8)
  labels = rng.integers(0, CLASSES, n)
  for i, c in enumerate(labels):
    r, q = divmod(int(c), 2)
    x[i, 14 * r : 14 * r + 14, 14 * q : 14 * q + 14] += rng.integers(110, 166, dtype=np.uint8)
  x[0], x[1] = 255, 0  # the ends of the input table
  return np.pad(x, ((0, 0), (2, 2), (2, 2))), labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model = TinyNet(classes=CLASSES)
  train = ArraySource(*quadrant_images(256, 0), CLASSES, 1, FMNIST_MEAN, FMNIST_STD)
  test = ArraySource(*quadrant_images(64, 1), CLASSES, 1, FMNIST_MEAN, FMNIST_STD)
  x0, _ = train.get_batch(np.arange(32))
  v = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(x0))
  opt = optax.adam(3e-3)
  params, stats, opt_state = v["params"], v["batch_stats"], opt.init(v["params"])

  @jax.jit
  def step(params, stats, opt_state, x, y):
    def loss(p):
      logits, new = model.apply(
        {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
      )
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

    (_, new), g = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = opt.update(g, opt_state)
    return optax.apply_updates(params, updates), new["batch_stats"], opt_state

  for i in range(40):
    x, y = train.get_batch(np.arange(32 * (i % 8), 32 * (i % 8) + 32))
    params, stats, opt_state = step(params, stats, opt_state, jnp.asarray(x), jnp.asarray(y))
  variables = {"params": params, "batch_stats": stats}
  header, arrays, report = lower_model(model, variables, jnp.asarray(x0[:8]))
  path = str(tmp_path_factory.mktemp("onnx") / "model.onnx")
  write_onnx(to_onnx(header, arrays, input_table(header["input"], FMNIST_MEAN, FMNIST_STD)), path)
  imodel = IntegerModel(header, device_tensors(header, arrays))
  return model, variables, test, imodel, path, report


def test_trained_model_runs_in_onnxruntime_bit_exact(trained):
  model, variables, test, imodel, path, report = trained
  assert report["probe_checks_failed"] == []
  r = compare_onnx(session(path), imodel, test, model=model, variables=variables, batch=24)
  assert r["examples"] == 64 and r["logits_identical"] == 64
  assert r["onnx_top1"] == r["integer_top1"] == r["fake_quant_top1"] > 0.6  # chance: 0.25
  assert r["ms_per_image"] > 0


def test_graph_is_standard_and_integer_only(trained):
  path = trained[4]
  onnx.checker.check_model(path, full_check=True)
  m = onnx.load(path)
  types = {n.op_type for n in m.graph.node}
  assert {"ConvInteger", "MatMulInteger", "Gather", "Div"} <= types
  assert not types & {"Conv", "MatMul", "Gemm", "QLinearConv", "QLinearMatMul"}
  assert float_nodes(m) == []
  assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
  assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT32
  scale = float({p.key: p.value for p in m.metadata_props}["logit_scale"])
  assert scale == trained[3].output_spec["scale"]
  # The check itself can fail: a float Conv, its float weights and values are reported.
  h, f32 = onnx.helper, onnx.TensorProto.FLOAT
  g = h.make_graph(
    [h.make_node("Conv", ["a", "b"], ["c"])],
    "float",
    [h.make_tensor_value_info("a", f32, [1, 1, 3, 3])],
    [h.make_tensor_value_info("c", f32, [1, 1, 1, 1])],
    [onnx.numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "b")],
  )
  bad = float_nodes(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]))
  assert bad == ["Conv node c", "initializer b", "value a (FLOAT)", "value c (FLOAT)"]


def test_input_table_is_the_pipeline_quantizer(trained):
  imodel = trained[3]
  table = input_table(imodel.input_spec, FMNIST_MEAN, FMNIST_STD)
  u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  want = imodel.quantize_input(
    ArraySource(u8, np.zeros(1), 1, 1, FMNIST_MEAN, FMNIST_STD).get_batch(np.arange(1))[0]
  )
  np.testing.assert_array_equal(table[0], np.asarray(want).reshape(-1))
  assert np.all(np.diff(table[0]) >= 0) and table[0, 0] < 0 < table[0, 255]


def test_doc_snippet_runs(trained, tmp_path, monkeypatch):
  text = open(DOC).read()
  blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "onnxruntime" in b]
  assert len(blocks) == 1 and len([ln for ln in blocks[0].splitlines() if ln.strip()]) <= 10
  images = quadrant_images(5, 2)[0][:, 2:30, 2:30]
  with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
    f.write(struct.pack(">HBB3I", 0, 8, 3, 5, 28, 28) + images.tobytes())
  os.symlink(trained[4], tmp_path / "model.onnx")
  monkeypatch.chdir(tmp_path)
  ns = {}
  exec(blocks[0], ns)
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None]
  want = session(trained[4]).run(["logits"], {"image": padded})[0]
  np.testing.assert_array_equal(ns["logits"], want)
