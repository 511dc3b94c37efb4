"""PikeLPN (CVPR 2024) on the MobileNetV1 geometry: variants 1x, 2x, 3x, 6x (ImageNet) and fmnist.

Commands (variant after ':'; any field can be overridden with --config.<field>=<value>):
  python main.py --config configs/pikelpn.py:1x --workdir /tmp/pikelpn_1x
  python main.py --config configs/pikelpn.py:2x --workdir /tmp/pikelpn_2x
  python main.py --config configs/pikelpn.py:3x --workdir /tmp/pikelpn_3x
  python main.py --config configs/pikelpn.py:6x --workdir /tmp/pikelpn_6x
  python main.py --config configs/pikelpn.py:fmnist --workdir /tmp/fmnist

What they should produce (ImageNet top-1, REPORTED by the paper as quoted by a third party,
shekhovt/TNet; see docs/models.md — not reproduced here, ImageNet training is infeasible on a
2-core CPU):
  1x: 67.55 % (reported)   2x: 69.23 % (reported)   3x: 71.95 % (reported)   6x: 73.59 % (reported)
fmnist (Fashion-MNIST test top-1): 90.12 % top-1 (99.75 % top-5) after 2000 steps, fully
  quantized, on a 2-core AVX-512 AMD EPYC (90.19 % / 99.80 % on the study's other 2-core CPUs:
  the CPU changes the trained bits); ACEv2 75.6M per image (MACs 2.97M, ACE 52.4M). The runs,
  their command, machines and times: docs/training.md ("The main job"). It is the study
  recipe's PikeLPN-1x seed 0 (experiments/lib/recipe.py, results/runs/).

Variants (our documented reading, docs/models.md):
  1x: width 1.0, body activations 4-bit (config.model.quant.a_bits = 4)
  2x: width 1.0, body activations 8-bit (config.model.quant.a_bits = 8): the paper says only that
      2x is a wider-precision 1x; a third-party re-pricing reads it as wider activations.
  3x: width 1.5, body activations 8-bit;  6x: width 2.0, body activations 8-bit
  fmnist: width 0.5, 4-bit activations, Fashion-MNIST 32×32×1, fully quantized PikeLPN; its
      activation steps are learned (LSQ) and its power-of-two scales rounded to nearest
      (config.model.dq_round), which the recipe sweep in docs/training.md chose.
All variants: 8-bit stem and head (weights and inputs), 8-bit per-channel depthwise weights,
4-bit per-tensor pointwise weights (config.model.bit_rules), ReLU, QuantNorm 8-bit
(config.model.quantnorm), Double Quantization with power-of-two scales (config.model.double_quant,
config.model.dq_format), DHQ (config.model.dhq). Turn any of the three off for ablations, e.g.
  python main.py --config configs/pikelpn.py:1x --config.model.quantnorm=False --workdir /tmp/x

Ablation variants '<base>_<setting>' (base 1x or fmnist; the settings of experiments/ablations.py,
which builds its configs from the 1x ones and trains them under the study recipe):
  all_on            as the base
  quantnorm_off     config.model.quantnorm=False
  double_quant_off  config.model.double_quant=False (float scales)
  dhq_off           config.model.dhq=False: depthwise layers use the pointwise quantizer
                    (4-bit per tensor)
  all_off           all three off: a plain quantized MobileNetV1
  dhq_on_dw4        DHQ on with 4-bit per-channel depthwise weights (rule DW_RULE)
  dq_fixed          Double Quantization with 8-bit mantissa × 2^e scales (config.model.dq_format)
The fmnist ones train the ablation's seed-0 run of their setting (same run key in results/runs/):
  python main.py --config configs/pikelpn.py:fmnist_all_on --workdir /tmp/abl_all_on
  python main.py --config configs/pikelpn.py:fmnist_quantnorm_off --workdir /tmp/abl_quantnorm_off
  python main.py --config configs/pikelpn.py:fmnist_double_quant_off --workdir /tmp/abl_dq_off
  python main.py --config configs/pikelpn.py:fmnist_dhq_off --workdir /tmp/abl_dhq_off
  python main.py --config configs/pikelpn.py:fmnist_all_off --workdir /tmp/abl_all_off
  python main.py --config configs/pikelpn.py:fmnist_dhq_on_dw4 --workdir /tmp/abl_dhq_on_dw4
  python main.py --config configs/pikelpn.py:fmnist_dq_fixed --workdir /tmp/abl_dq_fixed
(seed k: --config.seed=k; twice the budget: --config.num_train_steps=4000). The 1x ones
(ImageNet, 224×224) are the configs the ablation prices and, under the recipe, trains, e.g.
  python -m pikelpn_jax.ace --config configs/pikelpn.py:1x_dhq_off
"""

from pikelpn_jax.config_base import base_config
from pikelpn_jax.models.config_fields import check_variant, set_quant_fields

# variant -> (width, body activation bits)
VARIANTS = {"1x": (1.0, 4), "2x": (1.0, 8), "3x": (1.5, 8), "6x": (2.0, 8), "fmnist": (0.5, 4)}
REPORTED_TOP1 = {"1x": 67.55, "2x": 69.23, "3x": 71.95, "6x": 73.59}
DW_RULE = r"block\d+/dw"
# Ablation setting -> the fields it changes: model.quantnorm / double_quant / dhq / dq_format, and
# dw_bits, the weight bits of the depthwise rule (DW_RULE). A field not named keeps the base's.
ABLATIONS = {
  "all_on": {},
  "quantnorm_off": dict(quantnorm=False),
  "double_quant_off": dict(double_quant=False),
  "dhq_off": dict(dhq=False),
  "all_off": dict(quantnorm=False, double_quant=False, dhq=False),
  "dhq_on_dw4": dict(dw_bits=4),
  "dq_fixed": dict(dq_format="fixed"),
}
ABLATION_BASES = ("1x", "fmnist")
ABLATION_VARIANTS = {f"{b}_{a}": (b, a) for b in ABLATION_BASES for a in ABLATIONS}


def pikelpn_bit_rules():
  """First match wins; paths: 'stem', 'block{i}/dw', 'block{i}/pw', 'head'."""
  return (
    ("stem", dict(w_bits=8, a_bits=8, w_per_channel=True)),
    ("head", dict(w_bits=8, a_bits=8, w_per_channel=True)),
    (DW_RULE, dict(w_bits=8, w_per_channel=True)),
    # Pointwise layers use the defaults in config.model.quant (4-bit, per tensor).
  )


def get_config(variant: str = "1x"):
  if variant in ABLATION_VARIANTS:
    base, setting = ABLATION_VARIANTS[variant]
    return ablation(get_config(base), setting)
  base, underscore, _ = variant.partition("_")
  if underscore and base in VARIANTS:  # a misspelt ablation variant: list those
    check_variant(variant, tuple(ABLATION_VARIANTS), "configs/pikelpn.py")
  check_variant(variant, tuple(VARIANTS), "configs/pikelpn.py")
  width, a_bits = VARIANTS[variant]
  dataset = "fashion_mnist" if variant == "fmnist" else "imagenet2012"
  c = base_config("pikelpn", dataset)
  c.model.variant = variant
  c.model.width = width
  c.model.act = "relu"
  c.model.act_param_bits = None
  c.model.stem_stride = 2
  c.model.dw_impl = "auto"
  set_quant_fields(
    c.model,
    w_bits=4,
    a_bits=a_bits,
    w_per_channel=False,
    bit_rules=pikelpn_bit_rules(),
    quantnorm=True,
    double_quant=True,
    dhq=True,
  )
  c.reported_top1 = REPORTED_TOP1.get(variant, -1.0)  # -1: no reported number
  if variant == "fmnist":
    # Tuned by sweeps (docs/training.md): batch 256, AdamW lr 2e-2 with 100 warm-up steps,
    # cosine decay, label smoothing 0.1, weight decay 1e-3 on kernels; activation scales learned
    # (LSQ) and every power-of-two scale rounded to nearest (same ACEv2 as abs-max/EMA + ceil).
    c.model.quant.a_calibration = "lsq"
    c.model.dq_round = "nearest"
    c.batch_size = 256
    c.eval_batch_size = 500
    c.num_train_steps = 2000
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.log_every_steps = 50
    c.learning_rate = 2e-2
    c.warmup_steps = 100
    c.label_smoothing = 0.1
    c.weight_decay = 1e-3
    c.optimizer = "adamw"
    c.schedule = "cosine"
  else:
    # No PikeLPN recipe was retrieved; the PokeBNN/AQT recipe (same group) is the fallback.
    c.batch_size = 1024
    c.learning_rate = 2e-5 * c.batch_size / 256
    c.optimizer = "adam"
    c.b2 = 0.99
    c.num_train_steps = 200 * 1_281_167 // c.batch_size
  return c


def ablation(c, setting: str):
  """`c` (a PikeLPN config) with the switches of ablation `setting` (ABLATIONS)."""
  check_variant(setting, tuple(ABLATIONS), "configs/pikelpn.py ablation")
  changes = dict(ABLATIONS[setting])
  dw_bits = changes.pop("dw_bits", None)
  for field, value in changes.items():
    c.model[field] = value
  if dw_bits is not None:
    rules = tuple(c.model.bit_rules)
    if not any(p == DW_RULE for p, _ in rules):
      raise ValueError(f"no depthwise bit rule {DW_RULE!r}; rules: {[p for p, _ in rules]}")
    c.model.bit_rules = tuple(
      (p, dict(o, w_bits=dw_bits) if p == DW_RULE else dict(o)) for p, o in rules
    )
  return c
