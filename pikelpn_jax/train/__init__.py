"""Training: steps.py (the state, the losses, the train and eval steps), loop.py (train_and_evaluate),
checkpoint.py (every orbax call), optim.py, teacher.py, preemption.py, cli.py (what main.py runs)."""

from pikelpn_jax.train.loop import NonFiniteLossError, train_and_evaluate
from pikelpn_jax.train.preemption import Preempted
from pikelpn_jax.train.steps import StepFactory, TrainState
