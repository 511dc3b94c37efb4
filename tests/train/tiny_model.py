"""A tiny test-only model ('tiny_test_net') built from the zoo's blocks, and configs for it.

Same quantization machinery as PikeLPN (QuantPlan, QuantNorm, EMA activation bounds), but one
separable block instead of thirteen, so a train step compiles in seconds on a 2-core CPU.
"""

from __future__ import annotations

import flax.linen as nn

from pikelpn_jax.models import register
from pikelpn_jax.models.common import ConvNorm, Head
from pikelpn_jax.models.registry import _BUILDERS

NAME = "tiny_test_net"


class TinyNet(nn.Module):
  plan: object
  num_classes: int
  width: int = 4
  dw_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvNorm(self.plan, self.width, 3, 2, signed_input=True, name="stem")(x, train)
    x = ConvNorm(
      self.plan,
      x.shape[-1],
      3,
      2,
      depthwise=True,
      follows_norm=True,
      dw_impl=self.dw_impl,
      name="block0/dw",
    )(x, train)
    x = ConvNorm(self.plan, 2 * self.width, 1, 1, follows_norm=True, name="block0/pw")(x, train)
    return Head(self.plan, self.num_classes, name="head")(x, train)


if NAME not in _BUILDERS:

  @register(NAME)
  def _build(model_cfg, num_classes, plan, dw_impl):
    return TinyNet(
      plan=plan, num_classes=num_classes, width=int(model_cfg.get("tiny_width", 4)), dw_impl=dw_impl
    )


def tiny_config(steps: int = 6, dataset: str = "synthetic", tiny_width: int = 4):
  """PikeLPN's fmnist quantization settings on the tiny net, synthetic 16×16×3 data, batch 8."""
  from configs.pikelpn import get_config

  c = get_config("fmnist")
  c.model.name = NAME
  c.model.variant = "tiny"
  c.model.tiny_width = tiny_width
  c.dataset.name = dataset
  c.dataset.image_size = 16
  c.dataset.channels = 3
  c.dataset.num_classes = 10
  c.dataset.train_examples = 64
  c.dataset.eval_examples = 16
  c.batch_size = 8
  c.eval_batch_size = 8
  c.num_train_steps = steps
  c.eval_every_steps = steps
  c.checkpoint_every_steps = 2
  c.log_every_steps = 1
  c.learning_rate = 0.01
  c.warmup_steps = 0
  return c


OTHER_NAME = "tiny_test_net_b"  # the same net under another name: "a checkpoint of another model"
if OTHER_NAME not in _BUILDERS:

  @register(OTHER_NAME)
  def _build_other(model_cfg, num_classes, plan, dw_impl):
    return _BUILDERS[NAME](model_cfg, num_classes, plan, dw_impl)
