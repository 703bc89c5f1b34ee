"""Spectral normalisation (Miyato et al. 2018) as a transform of a player's parameters.

Every weight matrix of a player (dense and conv kernels, read as [inputs, outputs]: a conv
kernel [k, k, Cin, F] as the [k * k * Cin, F] matrix, as the paper does; and label embeddings,
the projection critic's among them) is divided by its largest singular value, estimated by
power iteration from a vector u kept in the train state (`PlayerState.spectral`, path -> u).
Biases and normalisation parameters are left alone: norm scales, and conditional batch norm's
per-class scales and shifts (embeddings, but of a norm; its shifts start at zero).

The transform sits outside the modules: `normalise(params, vectors)` gives the parameters the
module is applied with, and the gradient flows through sigma to the weights (u and v are held
constant, as in the paper). So it works with every architecture and conv form (the CPU-fast
layers included), under jit, pmap and vmap over members. A player's own update takes one power
iteration (`iterate`) and keeps the new u; everything else (the other player's update,
sampling) normalises with the kept u without updating it.
"""

from typing import Any, Dict, Tuple

import flax
import jax
import jax.numpy as jnp

EPS = 1e-12  # added to norms, as torch.nn.utils.spectral_norm's eps


def _key(path) -> str:
  return '/'.join(path)


def _matrix(w: jax.Array) -> jax.Array:
  """A weight as the matrix [inputs, outputs] whose spectral norm is taken."""
  return w.reshape(-1, w.shape[-1])


def _unit(x: jax.Array) -> jax.Array:
  return x / (jnp.linalg.norm(x) + EPS)


NORM_EMBEDDINGS = ('scale_embed', 'bias_embed')  # models.ConditionalBatchNorm's


def is_weight(path, w) -> bool:
  """Whether the parameter at `path` is a weight matrix that spectral norm divides."""
  return w.ndim >= 2 and (path[-1] == 'kernel' or (
      path[-1] == 'embedding' and path[-2] not in NORM_EMBEDDINGS))


def init_vectors(params, key) -> Dict[str, jax.Array]:
  """A random unit u [outputs] for every weight matrix of `params` (path -> u)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  vectors = {}
  for i, (path, w) in enumerate(sorted(flat.items())):
    if is_weight(path, w):
      vectors[_key(path)] = _unit(jax.random.normal(jax.random.fold_in(key, i),
                                                    (w.shape[-1],), jnp.float32))
  return vectors


def iterate(params, vectors: Dict[str, jax.Array], steps: int = 1) -> Dict[str, jax.Array]:
  """`steps` power iterations from `vectors`: u <- W^T W u / |W^T W u| (no gradient)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  out = {}
  for name, u in vectors.items():
    w = jax.lax.stop_gradient(_matrix(flat[tuple(name.split('/'))]).astype(jnp.float32))
    for _ in range(steps):
      u = _unit(w.T @ _unit(w @ u))
    out[name] = u
  return out


def sigma(w: jax.Array, u: jax.Array) -> jax.Array:
  """The estimate |W u| of W's largest singular value from u (differentiable in W; u constant):
  with v = W u / |W u| it is v^T W u, the paper's sigma."""
  return jnp.linalg.norm(_matrix(w).astype(jnp.float32) @ jax.lax.stop_gradient(u))


def normalise(params, vectors: Dict[str, jax.Array]) -> Tuple[Any, Dict[str, jax.Array]]:
  """(params with each weight matrix divided by its sigma, name -> sigma); `vectors` empty:
  params unchanged."""
  if not vectors:
    return params, {}
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  sigmas = {}
  for name, u in vectors.items():
    path = tuple(name.split('/'))
    sigmas[name] = sigma(flat[path], u)
    # (a zero matrix has sigma 0: it stays zero rather than turning into NaN)
    flat[path] = flat[path] / jnp.maximum(sigmas[name], EPS).astype(flat[path].dtype)
  return flax.traverse_util.unflatten_dict(flat), sigmas
