"""Parameter-free pieces of the zoo, checked on small arrays (eager, no model compile)."""

import jax
import jax.numpy as jnp
import numpy as np

from pikelpn_jax.models.mobilenet_v2 import make_divisible
from pikelpn_jax.models.pokebnn import reshape_shortcut


def test_pokebnn_shortcut_averages_consecutive_channels_when_shrinking():
  r = jnp.arange(2 * 2 * 2 * 6, dtype=jnp.float32).reshape(2, 2, 2, 6)
  out = reshape_shortcut(r, (2, 2, 2, 3), "zeropad")
  np.testing.assert_allclose(out, (r[..., 0::2] + r[..., 1::2]) / 2)


def test_pokebnn_shortcut_zeropads_or_tiles_when_expanding():
  r = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 2, 2))
  z = reshape_shortcut(r, (1, 2, 2, 6), "zeropad")
  np.testing.assert_allclose(z[..., :2], r)
  assert float(jnp.abs(z[..., 2:]).sum()) == 0
  t = reshape_shortcut(r, (1, 2, 2, 6), "tile")
  np.testing.assert_allclose(t, jnp.concatenate([r, r, r], -1))


def test_pokebnn_shortcut_avg_pools_3x3_stride2_when_the_map_shrinks():
  r = jnp.ones((1, 4, 4, 2))
  out = reshape_shortcut(r, (1, 2, 2, 2), "zeropad")
  assert out.shape == (1, 2, 2, 2)
  # SAME padding counts the padded zeros (flax avg_pool default, as in the official code):
  # the last window of a 4-wide map covers one padded column.
  np.testing.assert_allclose(out[0, 0, 0], [1.0, 1.0])
  np.testing.assert_allclose(out[0, 1, 1], [4.0 / 9.0] * 2)


def test_mobilenet_v2_channel_rounding_matches_torchvision():
  assert [make_divisible(c) for c in (32, 16, 24, 1280)] == [32, 16, 24, 1280]
  assert make_divisible(32 * 0.35) == 16 and make_divisible(24 * 0.75) == 24
  assert make_divisible(96 * 0.35) == 32  # 33.6 → 32 is within 10 %
