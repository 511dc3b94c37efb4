"""ReActNet-A (ECCV 2020) on ImageNet: variant a.

Command:
  python main.py --config configs/reactnet.py:a --workdir /tmp/reactnet_a

What it should produce (ImageNet top-1): 69.4 % (reported, ReActNet paper; recalled, also
listed by a third party, paper-notes §9.3). Not trained here (ImageNet is infeasible on this
2-core CPU).

Quantization: binary body (1-bit weights: sign·mean|w| per output channel; 1-bit activations:
sign after the learnable RSign threshold), real-valued (float) stem conv, shortcuts and head, as
in the paper (config.model.bit_rules). Norm: folded float batch norm.
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_quant_fields

VARIANTS = ("a",)


def get_config(variant: str = "a"):
  check_variant(variant, VARIANTS, "configs/reactnet.py")
  c = base_config("reactnet", "imagenet2012")
  c.model.variant = variant
  c.model.width = 1.0
  set_quant_fields(
    c.model,
    w_bits=1,
    a_bits=1,
    w_calibration="absmean",
    w_per_channel=True,
    a_calibration="fixed",
    a_bound=1.0,
    bit_rules=(("stem|head", dict(w_bits=None, a_bits=None)),),
  )
  c.reported_top1 = 69.4
  # ReActNet trains in two steps (binary activations first, then binary weights) with Adam and
  # KD from a ResNet-34; one step with Adam is the simplification here.
  c.batch_size = 256
  c.learning_rate = 5e-4
  c.optimizer = "adam"
  c.weight_decay = 5e-6
  c.schedule = "linear"
  c.num_train_steps = 256 * 1_281_167 // c.batch_size
  return c
