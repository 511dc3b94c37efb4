"""MobileNetV2 baselines (ImageNet): float, w8a8, w4a4, w4a4_prelu.

Commands:
  python main.py --config configs/mobilenet_v2.py:float --workdir /tmp/mbv2_float
  python main.py --config configs/mobilenet_v2.py:w8a8 --workdir /tmp/mbv2_w8a8
  python main.py --config configs/mobilenet_v2.py:w4a4 --workdir /tmp/mbv2_w4a4
  python main.py --config configs/mobilenet_v2.py:w4a4_prelu --workdir /tmp/mbv2_w4a4_prelu

What they should produce (ImageNet top-1):
  float: 72.0 % (reported, Sandler et al. 2018, Table 4; recalled, not re-verified here);
  w8a8 / w4a4 / w4a4_prelu: no reported number in our sources.
Not trained here (ImageNet is infeasible on this 2-core CPU).

Quantization: w8a8 = every layer 8-bit; w4a4 = body 4-bit, stem and head 8-bit
(config.model.bit_rules). w4a4_prelu = w4a4 with PReLU instead of ReLU6 (config.model.act):
the parameterized activation whose elementwise cost PikeLPN points at; its slopes are float
(config.model.act_param_bits = None). Norm: folded float batch norm; float scales.
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_baseline_bits

VARIANTS = ("float", "w8a8", "w4a4", "w4a4_prelu")


def get_config(variant: str = "float"):
  check_variant(variant, VARIANTS, "configs/mobilenet_v2.py")
  c = base_config("mobilenet_v2", "imagenet2012")
  c.model.variant = variant
  c.model.width = 1.0
  c.model.act = "prelu" if variant == "w4a4_prelu" else "relu6"
  c.model.act_param_bits = None
  c.model.stem_stride = 2
  c.model.dw_impl = "auto"
  set_baseline_bits(c.model, "w4a4" if variant == "w4a4_prelu" else variant)
  c.reported_top1 = 72.0 if variant == "float" else -1.0
  c.batch_size = 256
  c.learning_rate = 0.045
  c.optimizer = "sgd"
  c.weight_decay = 4e-5
  c.num_train_steps = 150 * 1_281_167 // c.batch_size
  return c
