"""MobileNetV1 baselines (ImageNet): float, w8a8, w4a4.

Commands:
  python main.py --config configs/mobilenet_v1.py:float --workdir /tmp/mbv1_float
  python main.py --config configs/mobilenet_v1.py:w8a8 --workdir /tmp/mbv1_w8a8
  python main.py --config configs/mobilenet_v1.py:w4a4 --workdir /tmp/mbv1_w4a4

What they should produce (ImageNet top-1):
  float: 70.6 % (reported, Howard et al. 2017, Table 8, 1.0 MobileNet-224; recalled, not
         re-verified from the PDF here);  w8a8 / w4a4: no reported number in our sources.
Not trained here (ImageNet is infeasible on this 2-core CPU).

Quantization: w8a8 = every layer 8-bit (weights per channel, activations per tensor, EMA bound);
w4a4 = body 4-bit, stem and head 8-bit (config.model.bit_rules). The norm is the ordinary folded
float batch norm (QuantNorm(bits=None)); scales are float (no Double Quantization).
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_baseline_bits

VARIANTS = ("float", "w8a8", "w4a4")


def get_config(variant: str = "float"):
  check_variant(variant, VARIANTS, "configs/mobilenet_v1.py")
  c = base_config("mobilenet_v1", "imagenet2012")
  c.model.variant = variant
  c.model.width = 1.0
  c.model.act = "relu"
  c.model.stem_stride = 2
  c.model.dw_impl = "auto"
  set_baseline_bits(c.model, variant)
  c.reported_top1 = 70.6 if variant == "float" else -1.0
  c.batch_size = 256
  c.learning_rate = 0.1
  c.optimizer = "sgd"
  c.weight_decay = 4e-5
  c.num_train_steps = 150 * 1_281_167 // c.batch_size
  return c
