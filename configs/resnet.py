"""ResNet baselines (ImageNet): 18_float, 18_w4a4, 50_float, 50_w8a8.

Commands:
  python main.py --config configs/resnet.py:18_float --workdir /tmp/r18_float
  python main.py --config configs/resnet.py:18_w4a4 --workdir /tmp/r18_w4a4
  python main.py --config configs/resnet.py:50_float --workdir /tmp/r50_float
  python main.py --config configs/resnet.py:50_w8a8 --workdir /tmp/r50_w8a8

What they should produce (ImageNet top-1):
  18_float: 69.76 % (reported, torchvision weights; recalled, not re-verified here)
  50_float: 76.13 % (reported, torchvision weights; recalled, not re-verified here)
  18_w4a4, 50_w8a8: no reported number in our sources. 50_w8a8 is the teacher of PokeBNN's
  recipe (AQT "resnet50-8bit").
Not trained here (ImageNet is infeasible on this 2-core CPU).

Quantization: w8a8 = every layer 8-bit; w4a4 = body 4-bit, stem and head 8-bit
(config.model.bit_rules). Norm: folded float batch norm; float scales.
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_baseline_bits

VARIANTS = ("18_float", "18_w4a4", "50_float", "50_w8a8")
REPORTED_TOP1 = {"18_float": 69.76, "50_float": 76.13}


def get_config(variant: str = "50_float"):
  check_variant(variant, VARIANTS, "configs/resnet.py")
  depth, quant = variant.split("_")
  c = base_config("resnet", "imagenet2012")
  c.model.variant = variant
  c.model.depth = int(depth)
  c.model.width = 1.0
  c.model.zero_init_residual = False
  set_baseline_bits(c.model, quant)
  c.reported_top1 = REPORTED_TOP1.get(variant, -1.0)
  c.batch_size = 256
  c.learning_rate = 0.1
  c.optimizer = "sgd"
  c.weight_decay = 1e-4
  c.num_train_steps = 90 * 1_281_167 // c.batch_size
  return c
