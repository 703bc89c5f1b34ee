"""StyleGAN2's training on ws, as stylegan2-ada-pytorch's StyleGAN2Loss computes it: style
mixing (`mixing_cutoff`, `mix`) and the path length penalty (`path_lengths`, `pl_mean_after`,
`pl_penalty`). Pure functions of their random draws: gan_jax/updates.py draws them and wires
them into the updates; tests/test_stylegan2_networks.py compares them with the official
computation given the same draws.
"""

from typing import Callable, Tuple

import jax
import jax.numpy as jnp


def mixing_cutoff(key, prob: float, num_ws: int) -> jax.Array:
  """The batch's one cutoff: with probability `prob` uniform in [1, num_ws), else num_ws (no
  mixing). int32 []."""
  cutoff_key, coin_key = jax.random.split(key)
  cutoff = jax.random.randint(cutoff_key, (), 1, num_ws)
  return jnp.where(jax.random.uniform(coin_key, ()) < prob, cutoff, num_ws)


def mix(ws, other_ws, cutoff) -> jax.Array:
  """ws [B, num_ws, w_dim] with every w from index `cutoff` on taken from `other_ws` (the
  official ws[:, cutoff:] = other_ws[:, cutoff:]); a cutoff of num_ws keeps ws."""
  later = jnp.arange(ws.shape[1]) >= cutoff
  return jnp.where(later[None, :, None], other_ws, ws)


def path_lengths(synthesize: Callable, ws, noise) -> Tuple[jax.Array, jax.Array]:
  """(images [B, H, W, C] = synthesize(ws), lengths [B]): per example the length of
  J^T y, the gradient with respect to ws of sum(images * y) for y = noise / sqrt(H W)
  (`noise` [B, H, W, C] ~ N(0, I)), as sqrt(the mean over the ws of the squared norm over
  w_dim). Differentiable: the penalty's gradient goes through the gradient (second order)."""
  images, vjp = jax.vjp(synthesize, ws)
  height, width = images.shape[1:3]
  grads, = vjp((noise / jnp.sqrt(float(height * width))).astype(images.dtype))
  return images, jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


def pl_mean_after(pl_mean, lengths_mean, decay: float) -> jax.Array:
  """The moving average of the path lengths after a batch whose mean length is
  `lengths_mean`: pl_mean + (lengths_mean - pl_mean) * decay (torch's lerp), without a
  gradient."""
  return jax.lax.stop_gradient(pl_mean + (lengths_mean - pl_mean) * decay)


def pl_penalty(lengths, pl_mean) -> jax.Array:
  """The path length penalty: mean over the examples of (length - pl_mean)^2 (pl_mean the
  average after this batch, `pl_mean_after`)."""
  return jnp.mean(jnp.square(lengths - pl_mean))
