"""pikelpn_jax: PikeLPN, its baselines and the ACEv2 cost analyzer in JAX/Flax."""

__version__ = "0.1.0"
