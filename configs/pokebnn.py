"""PokeBNN (CVPR 2022) on ImageNet: widths 0.5x, 1.0x, 2.0x (config.model.width).

Commands:
  python main.py --config configs/pokebnn.py:0.5x --workdir /tmp/pokebnn_0.5x
  python main.py --config configs/pokebnn.py:1.0x --workdir /tmp/pokebnn_1.0x
  python main.py --config configs/pokebnn.py:2.0x --workdir /tmp/pokebnn_2.0x
The paper's recipe distils from an 8-bit ResNet-50 (pure KD); to use it, train that teacher
first and add:
  --config.distill.teacher_config=configs/resnet.py:50_w8a8 --config.distill.teacher_workdir=/tmp/r50_w8a8

What they should produce (ImageNet top-1): no per-width number in our sources. The PokeBNN
abstract reports 70.5 % at 2.6 ACE and 75.6 % at 7.8 ACE (reported; other width multipliers,
paper-notes §9.3/§11). Not trained here (ImageNet is infeasible on this 2-core CPU).

Quantization (official config, paper-notes §9.2): binary body (1-bit weights, per output channel
abs-max scale; 1-bit activations, fixed bound 3.0, half_shift: values ±1.5), 8-bit PokeInit and
head, 4-bit SE (int4 input to se_reduce, uint4 input to se_expand). Norm: folded float batch norm.
Recipe (official): Adam b2 0.99, batch 8192, lr 6.4e-4, weight decay 5e-5, linear to 0 at epoch
750 of 800, weights quantized from step 50, activations from step 7500.
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_quant_fields

VARIANTS = {"0.5x": 0.5, "1.0x": 1.0, "2.0x": 2.0}

_EIGHT_BIT = dict(w_bits=8, a_bits=8, half_shift=False, a_calibration="ema", a_bound=6.0)
_SE = dict(w_bits=4, a_bits=4, half_shift=False, a_calibration="ema", a_bound=6.0)


def pokebnn_bit_rules():
  """First match wins; paths: 'init_conv', 'init_conv_group', 'resblock{i}/unit{j}',
  'resblock{i}/unit{j}/se/se_reduce|se_expand', 'head'."""
  return (
    ("init_conv|init_conv_group", _EIGHT_BIT),
    (r"resblock\d+/unit\d/se/se_reduce", dict(_SE, a_signed=True)),
    (r"resblock\d+/unit\d/se/se_expand", dict(_SE, a_signed=False)),
    ("head", _EIGHT_BIT),
  )


def get_config(variant: str = "1.0x"):
  check_variant(variant, tuple(VARIANTS), "configs/pokebnn.py")
  c = base_config("pokebnn", "imagenet2012")
  c.model.variant = variant
  c.model.width = VARIANTS[variant]
  c.model.init_group = 32
  c.model.se_ratio = 0.125
  set_quant_fields(
    c.model,
    w_bits=1,
    a_bits=1,
    half_shift=True,
    a_calibration="fixed",
    a_bound=3.0,
    w_per_channel=True,
    bit_rules=pokebnn_bit_rules(),
  )
  c.reported_top1 = -1.0
  c.batch_size = 8192
  c.learning_rate = 2e-5 * c.batch_size / 256
  c.optimizer = "adam"
  c.b2 = 0.99
  c.weight_decay = 5e-5
  steps_per_epoch = 1_281_167 // c.batch_size
  c.num_train_steps = 800 * steps_per_epoch
  c.schedule = "piecewise"
  c.schedule_knee_step = 750 * steps_per_epoch
  c.quant_schedule.weight_start_step = 50
  c.quant_schedule.act_start_step = 7500
  return c
