"""Spectral normalisation (Miyato et al. 2018) as a transform of a player's parameters.

Every weight matrix of a player (dense and conv kernels, read as [inputs, outputs]: a conv
kernel [k, k, Cin, F] as the [k * k * Cin, F] matrix, as the paper does; and label embeddings,
the projection critic's among them) is divided by its largest singular value, estimated by
power iteration from a vector u kept in the train state (`PlayerState.spectral`, path -> u).
Biases and normalisation parameters are left alone: norm scales, and conditional batch norm's
per-class scales and shifts (embeddings, but of a norm; its shifts start at zero); so is BigGAN's
shared class embedding in G, as in BigGAN-PyTorch.

The transform sits outside the modules: `normalise(params, vectors)` gives the parameters the
module is applied with, and the gradient flows through sigma to the weights (u and v are held
constant, as in the paper). So it works with every architecture and conv form (the CPU-fast
layers included), under jit, pmap and vmap over members. A player's own update takes one power
iteration (`power_step`) and keeps the new u; everything else (the other player's update,
sampling) normalises with the kept u without updating it.

Two estimates of sigma from u (model.spectral_estimate, `ESTIMATES`):
  * 'u':  |W u| of the u the update's iteration gives (u on W's outputs' side; an embedding
          [classes, features] read as its linear map, u over the features).
  * 'uv': Miyato et al.'s Algorithm 1, as torch.nn.utils.spectral_norm and BigGAN-PyTorch compute
          it: v = W u / |W u| from the u *before* the iteration and sigma = u'^T W^T v = |W^T v|
          (half an iteration behind 'u'); an embedding's u spans its classes, as BigGAN-PyTorch's
          SNEmbedding and torch's spectral_norm of an nn.Embedding keep it. Sampling and the
          other player's update estimate sigma from the kept u the same way, as those
          libraries do in eval mode.
Both keep the same u for a dense or conv kernel; they differ by where the iteration has got to
(equal once it has converged).
"""

from typing import Any, Dict, Tuple

import flax
import jax
import jax.numpy as jnp

EPS = 1e-12  # added to norms, as torch.nn.utils.spectral_norm's eps


def _key(path) -> str:
  return '/'.join(path)


ESTIMATES = ('u', 'uv')


def _matrix(w: jax.Array, path=(), estimate: str = 'u') -> jax.Array:
  """A weight as the matrix [inputs, outputs] whose spectral norm is taken, u on the outputs'
  side; 'uv' takes an embedding [classes, features] transposed, its u over the classes."""
  if estimate == 'uv' and path and path[-1] == 'embedding':
    return w.T
  return w.reshape(-1, w.shape[-1])


def _unit(x: jax.Array) -> jax.Array:
  return x / (jnp.linalg.norm(x) + EPS)


# Embeddings left alone: models.ConditionalBatchNorm's, and BigGAN's shared class embedding
# (models/biggan.py; BigGAN-PyTorch keeps it unnormalised).
UNNORMALISED_EMBEDDINGS = ('scale_embed', 'bias_embed', 'shared_embed')


def is_weight(path, w) -> bool:
  """Whether the parameter at `path` is a weight matrix that spectral norm divides."""
  return w.ndim >= 2 and (path[-1] == 'kernel' or (
      path[-1] == 'embedding' and path[-2] not in UNNORMALISED_EMBEDDINGS))


def check_estimate(estimate: str) -> None:
  if estimate not in ESTIMATES:
    raise ValueError(f'unknown spectral estimate {estimate!r}; use one of '
                     f'{", ".join(map(repr, ESTIMATES))}')


def init_vectors(params, key, estimate: str = 'u') -> Dict[str, jax.Array]:
  """A random unit u [outputs] for every weight matrix of `params` (path -> u)."""
  check_estimate(estimate)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  vectors = {}
  for i, (path, w) in enumerate(sorted(flat.items())):
    if is_weight(path, w):
      size = _matrix(w, path, estimate).shape[-1]
      vectors[_key(path)] = _unit(jax.random.normal(jax.random.fold_in(key, i), (size,),
                                                    jnp.float32))
  return vectors


def iterate(params, vectors: Dict[str, jax.Array], steps: int = 1,
            estimate: str = 'u') -> Dict[str, jax.Array]:
  """`steps` power iterations from `vectors`: u <- W^T W u / |W^T W u| (no gradient)."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  out = {}
  for name, u in vectors.items():
    path = tuple(name.split('/'))
    w = jax.lax.stop_gradient(_matrix(flat[path], path, estimate).astype(jnp.float32))
    for _ in range(steps):
      u = _unit(w.T @ _unit(w @ u))
    out[name] = u
  return out


def power_step(params, vectors: Dict[str, jax.Array], estimate: str = 'u'):
  """A player's own update's power iteration: (the vectors it keeps, the vectors its sigmas
  come from in this update: the new ones for 'u', the ones before the iteration for 'uv')."""
  new = iterate(params, vectors, 1, estimate)
  return new, (new if estimate == 'u' else vectors)


def sigma(w: jax.Array, u: jax.Array, path=(), estimate: str = 'u') -> jax.Array:
  """The estimate of W's largest singular value from u (differentiable in W; u and v constant):
  'u': |W u| (with v = W u / |W u| it is v^T W u); 'uv': |W^T v| with v = W u / |W u|."""
  w = _matrix(w, path, estimate).astype(jnp.float32)
  u = jax.lax.stop_gradient(u)
  if estimate == 'u':
    return jnp.linalg.norm(w @ u)
  v = jax.lax.stop_gradient(_unit(w @ u))
  return jnp.linalg.norm(w.T @ v)


def normalise(params, vectors: Dict[str, jax.Array],
              estimate: str = 'u') -> Tuple[Any, Dict[str, jax.Array]]:
  """(params with each weight matrix divided by its sigma, name -> sigma); `vectors` empty:
  params unchanged."""
  if not vectors:
    return params, {}
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
  sigmas = {}
  for name, u in vectors.items():
    path = tuple(name.split('/'))
    sigmas[name] = sigma(flat[path], u, path, estimate)
    # (a zero matrix has sigma 0: it stays zero rather than turning into NaN)
    flat[path] = flat[path] / jnp.maximum(sigmas[name], EPS).astype(flat[path].dtype)
  return flax.traverse_util.unflatten_dict(flat), sigmas
