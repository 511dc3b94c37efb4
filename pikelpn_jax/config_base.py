"""The shared skeleton of every experiment config (configs/*.py build on it).

Top-level fields (a contract: tools and users rely on these names):
  model            ConfigDict, at least `name` (a key of pikelpn_jax.models.registry)
  dataset          ConfigDict: name (imagenet2012 | fashion_mnist | image_folder | synthetic),
                   image_size, channels, num_classes, data_dir, ...
  batch_size, num_train_steps, eval_every_steps, checkpoint_every_steps, seed, learning_rate
  dtype            compute dtype: float32 | bfloat16
  optimizer, schedule, ... (training), distill (knowledge distillation), quant_schedule, ace

Where defaults live: the fields every config has, here (base_config, dataset_config); a model's
fields, in its config file (configs/*.py, with models/config_fields.py's set_quant_fields for the
quantization fields); a layer's quantization settings that nothing sets, LAYER_DEFAULTS; the
fields a config may lack (older saved configs, families that have no use for them),
FIELD_DEFAULTS and MODEL_FIELD_DEFAULTS, filled in by model_fields where a model is built.
Overrides (--config.a.b=value) are parsed by pikelpn_jax/config_cli.py for every CLI.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
from typing import Any, Optional

import ml_collections

DATASETS = ("imagenet2012", "fashion_mnist", "image_folder", "synthetic")


def dataset_config(name: str = "imagenet2012") -> ml_collections.ConfigDict:
  d = ml_collections.ConfigDict()
  d.name = name
  d.data_dir = ml_collections.config_dict.placeholder(str)  # tfds data_dir / folder root
  d.fmnist_dir = "/usr/share/datasets/fashion-mnist"
  if name == "fashion_mnist":
    d.image_size = 32  # 28×28 padded to 32×32 (MobileNet strides divide it)
    d.channels = 1  # replicate to 3 by setting channels=3
    d.num_classes = 10
    d.resize = "pad"  # pad | resize
    d.train_examples = 60000  # use a prefix of the training set (quick runs)
    d.augment = "none"  # training augmentation: none | flip | shift | flip_shift
    d.max_shift = 2  # pixels, for shift / flip_shift (zero fill)
  else:
    d.image_size = 224
    d.channels = 3
    d.num_classes = 1000
    d.resize = "resize"
    d.train_examples = -1
  d.eval_examples = -1  # -1: the whole eval split
  d.worker_count = -1  # grain decode processes (image_folder/imagenet2012): -1 = automatic
  # (cores − 1; 0 on ≤ 2 cores), 0 = in the training process
  return d


def base_config(model_name: str, dataset: str = "imagenet2012") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict()
  c.model.name = model_name
  c.model.pw_impl = "auto"  # 1×1 convs: auto (matmul on CPU, conv elsewhere) | conv | dot
  c.dataset = dataset_config(dataset)

  c.seed = 0
  c.dtype = "float32"  # compute dtype of activations/convs: float32 | bfloat16 (params,
  # optimizer state, losses and norm statistics stay float32)
  c.batch_size = 256
  c.eval_batch_size = 256
  c.num_train_steps = 100_000
  c.eval_every_steps = 5_000
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_every_steps = 100

  c.learning_rate = 1e-3
  c.optimizer = "adamw"  # sgd | adam | adamw
  c.momentum = 0.9  # sgd: momentum; adam/adamw: b1, the first-moment decay
  c.nesterov = False  # sgd only
  c.b2 = 0.999
  c.weight_decay = 5e-5  # kernels only
  c.schedule = "cosine"  # cosine | linear | piecewise | constant
  c.warmup_steps = 0
  c.schedule_knee_step = -1  # piecewise (PokeBNN): linear to 0 at the knee
  c.label_smoothing = 0.0

  c.distill = ml_collections.ConfigDict()
  c.distill.teacher_config = ""  # 'configs/x.py:variant' ('' = no distillation)
  c.distill.teacher_workdir = ""
  c.distill.alpha = 1.0  # weight of the KD term; 1.0 = pure KD (PokeBNN)
  c.distill.temperature = 1.0

  c.quant_schedule = ml_collections.ConfigDict()
  c.quant_schedule.weight_start_step = 0
  c.quant_schedule.act_start_step = 0

  c.ace = ml_collections.ConfigDict()
  # None: each float is as wide as its dtype (f32 32, bf16 16); an int overrides every float
  c.ace.float_bits = ml_collections.config_dict.placeholder(int)
  c.ace.acc_bits = 32
  return c


# The quantization settings of a layer that no rule or config.model.quant sets (the keys of
# config.model.quant and of every bit rule's overrides; pikelpn_jax/models/bit_rules.py says what
# each means). set_quant_fields starts config.model.quant from these.
LAYER_DEFAULTS = {
  "w_bits": None,
  "a_bits": None,
  "w_per_channel": True,
  "w_channel_axis": -1,
  "w_calibration": "absmax",
  "a_calibration": "ema",
  "a_bound": 6.0,
  "a_signed": None,
  "half_shift": False,
}

# Fields a config may lack, with the value a config without them is built and trained with:
# families that have no use for the field (dw_impl without depthwise layers, act_param_bits
# without PReLU), and configs written before the field existed: the workdir config.json of older
# runs and the configs in results/runs/ records (none has dtype). They are filled in one place,
# with_field_defaults(), where a model is built or its compute dtype read; the resolved config
# that is saved and hashed into run keys keeps only the fields its config file wrote. Every other
# field a model reads must be in the config (configs/*.py write them); a missing one is an error.
FIELD_DEFAULTS = {
  "dtype": "float32",
}
MODEL_FIELD_DEFAULTS = {
  "act_param_bits": None,  # float PReLU slopes
  "dw_impl": "auto",
  "pw_impl": "auto",
  # the quantization fields (models/config_fields.py): a config without them is a float model
  "quant": {},  # every layer at LAYER_DEFAULTS
  "bit_rules": (),
  "quantnorm": False,
  "quantnorm_bits": 8,
  "quantnorm_bias_bits": 32,
  "double_quant": False,
  "dq_format": "pow2",
  "dq_round": "auto",
  "dhq": True,  # the depthwise rule applies (set_quant_fields writes dhq; older PikeLPN configs
  # had no switch, their depthwise layers always followed it)
}


class MissingFieldError(ValueError, KeyError):
  """A field a model needs is not in the config (one line saying which; also a KeyError, as a
  missing key of a dict is)."""

  def __str__(self):
    return str(self.args[0]) if self.args else ""


class ModelFields(dict):
  """config.model as a dict, MODEL_FIELD_DEFAULTS filled in; a missing field is named."""

  def __missing__(self, key):
    raise MissingFieldError(
      f"config.model.{key} is missing: the model needs it (configs/*.py set it; "
      "config_base.MODEL_FIELD_DEFAULTS lists the fields a config may leave out)"
    )


def model_fields(model_cfg) -> ModelFields:
  """config.model with the fields it lacks from MODEL_FIELD_DEFAULTS (a new dict)."""
  out = ModelFields(MODEL_FIELD_DEFAULTS)
  out.update(dict(model_cfg))
  return out


def field_or_default(config, name: str):
  """Top-level field `name` of config, or FIELD_DEFAULTS[name] when the config lacks it."""
  return config[name] if name in config else FIELD_DEFAULTS[name]


def check_int(
  field: str,
  value,
  lo: Optional[int] = None,
  hi: Optional[int] = None,
  *,
  allowed: Optional[str] = None,
) -> int:
  """`value` when it is an int (not a bool) in [lo, hi]; else a one-line ValueError naming the
  field, the value and what is allowed (`allowed` overrides the generated wording)."""
  if (
    isinstance(value, bool)
    or not isinstance(value, int)
    or (lo is not None and value < lo)
    or (hi is not None and value > hi)
  ):
    if allowed is None:
      if lo is not None and hi is not None:
        allowed = f"an integer in {lo}..{hi}"
      elif lo == 1:
        allowed = "a positive integer"
      elif lo is not None:
        allowed = f"an integer >= {lo}"
      else:
        allowed = "an integer" if hi is None else f"an integer <= {hi}"
    raise ValueError(f"{field}={value!r} is not allowed; use {allowed}")
  return value


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_config_file(path: str, spec: str, what: str = "config") -> str:
  """The file a spec's path names, from the cwd, else the repo root; a one-line
  FileNotFoundError listing configs/*.py when there is none."""
  found = next((p for p in (path, os.path.join(REPO_ROOT, path)) if os.path.isfile(p)), None)
  if found is None or not path.endswith(".py"):
    files = sorted(f for f in os.listdir(os.path.join(REPO_ROOT, "configs")) if f.endswith(".py"))
    raise FileNotFoundError(
      f"{what}={spec!r}: no config file {path!r}; use "
      f"'configs/<name>.py:<variant>' with <name>.py one of {files}"
    )
  return found


def load_config(spec: str, what: str = "config") -> ml_collections.ConfigDict:
  """'path/to/file.py:variant' -> get_config(variant), as `main.py --config` loads it.

  The path is tried from the cwd, then from the repo root; no ':' = the default variant.
  """
  path, _, variant = spec.partition(":")
  found = find_config_file(path, spec, what)
  module_spec = importlib.util.spec_from_file_location(
    f"_pikelpn_cfg_{abs(hash(os.path.abspath(found)))}", found
  )
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{what}={spec!r}: {found} has no get_config()")
  if variant and not inspect.signature(module.get_config).parameters:
    raise ValueError(
      f"{what}={spec!r}: get_config() in {found} takes no variant; use {path!r} without "
      f"':{variant}'"
    )
  return module.get_config(variant) if variant else module.get_config()


DTYPES = ("float32", "bfloat16")


def compute_dtype(config):
  """config.dtype as a jnp dtype: the model's activations and convolutions run in it."""
  import jax.numpy as jnp

  name = field_or_default(config, "dtype")
  if name not in DTYPES:
    raise ValueError(f"config.dtype={name!r} is not allowed; use one of {list(DTYPES)}")
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def _jsonable(v: Any) -> Any:
  if isinstance(v, ml_collections.ConfigDict):
    v = v.to_dict()
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_jsonable(x) for x in v]
  if isinstance(v, (str, int, float, bool)) or v is None:
    return v
  return repr(v)


def config_to_dict(config) -> dict:
  """The resolved config as plain JSON types (tuples become lists)."""
  return _jsonable(config)


def config_to_json(config) -> str:
  return json.dumps(config_to_dict(config), indent=2, sort_keys=True)
