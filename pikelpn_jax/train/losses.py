"""Losses and accuracy counts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits, labels, smoothing: float = 0.0):
  """Per-example softmax cross entropy against (optionally smoothed) one-hot labels."""
  n = logits.shape[-1]
  targets = jax.nn.one_hot(labels, n)
  if smoothing:
    targets = targets * (1.0 - smoothing) + smoothing / n
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def distillation(student_logits, teacher_logits, temperature: float = 1.0):
  """Per-example KD loss −Σ softmax(t/T)·log_softmax(s/T)·T² (PokeBNN's pure KD at T=1)."""
  t = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32) / temperature)
  s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
  return -jnp.sum(t * s, axis=-1) * temperature**2


def topk_correct(logits, labels, k: int):
  """1.0 where the label is among the k largest logits (k capped at the class count)."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)
