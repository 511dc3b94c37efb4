"""Input pipelines: fashion_mnist, imagenet2012, image_folder, synthetic (see pipeline.py)."""

from pikelpn_jax.config_base import DATASETS
from pikelpn_jax.data.pipeline import InputPipeline, check_dataset_name, make_source
from pikelpn_jax.data.sources import FMNIST_INSTALL, check_fmnist_files, read_idx
