"""Training: the loop, checkpoints (orbax, checkpoint.py only), optimizers, distillation."""

from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate
from pikelpn_jax.train.preemption import Preempted
