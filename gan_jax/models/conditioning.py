"""How a model with num_classes > 0 uses labels, and the normalisation layers every family picks.

A model's `conditioning` field says how:
  * 'acgan':      the generator multiplies z by a learned label embedding (Hadamard product, as in
                  ACGAN); the critic has a class head beside the adversarial one (labels unused).
  * 'tac':        ACGAN's, and the critic has a twin class head (params/twin_head) beside the
                  class head: TAC-GAN (Gong et al. 2019), whose twin classifies the generated
                  images and whose class_logits are [class head's, twin's] ([B, 2K]).
  * 'd2d':        ACGAN's generator; the critic's class head is ReACGAN's (Kang et al. 2021): a
                  unit embedding of its features (params/embed_head, a linear layer to
                  embed_dim) and a unit proxy per class (params/class_proxies), class_logits
                  [the cosine to each proxy, the embedding] ([B, K + embed_dim]), for the
                  data-to-data cross-entropy (losses.data_to_data_xent).
  * 'projection': Miyato & Koyama 2018, "cGANs with Projection Discriminator". The critic's
                  adv_logits are linear(phi(x)) + <embed(y), phi(x)>, phi(x) the features its
                  heads see (flattened or globally pooled), and it has no class head. The
                  generator's batch norms are conditional (`ConditionalBatchNorm`, SNGAN's and
                  BigGAN's generators) and z goes in as is; a generator without batch norm (gen
                  norm 'none' or 'layer') has nothing to make conditional, so it takes ACGAN's z
                  times a label embedding instead, to stay conditioned.
num_classes = 0 is unconditional (labels unused).

`GeneratorInput` (z, with its label embedding) and `CriticHeads` are sub-modules a model makes
with `family.in_scope_of`: they share the model's scope, so their layers sit at the model's own
paths (params/label_embed, params/adv_head, params/class_head, params/projection_embed), the
paths checkpoints hold, with the initial values Flax draws for those paths; a sub-module of its
own would nest them under its name. `norm_layer` returns a layer the model calls, and owns.
"""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import init

CONDITIONINGS = ('acgan', 'tac', 'd2d', 'projection')


def check_conditioning(conditioning: str) -> None:
  """Raises ValueError unless `conditioning` is one of CONDITIONINGS."""
  if conditioning not in CONDITIONINGS:
    raise ValueError(f'unknown conditioning {conditioning!r}; use one of '
                     f'{", ".join(map(repr, CONDITIONINGS))}')


def conditioning_of(m) -> str:
  """How module `m` uses labels: 'none' (num_classes 0) or one of CONDITIONINGS."""
  check_conditioning(m.conditioning)
  return m.conditioning if m.num_classes > 0 else 'none'


# The batch norm of every model, plain or conditional.
_BATCH_NORM = dict(momentum=0.9, epsilon=1e-5)


# What a conditional batch norm's scale and shift are functions of (ConditionalBatchNorm).
CONDITIONS = ('class', 'vector')


class ConditionalBatchNorm(nn.Module):
  """Batch norm with a scale and a shift per example, from its class or a vector: BatchNorm
  without a scale and bias of its own, then x * scale + shift, where `condition`

    'class':  scale[y], shift[y] per class y (de Vries et al. 2017; SNGAN's projection cGAN):
              embeddings params/scale_embed (from 1) and params/bias_embed (from 0), so at
              initialisation it is BatchNorm(use_scale=False, use_bias=False), and plain
              BatchNorm's init too;
    'vector': scale 1 + linear(c), shift linear(c) of a vector c [B, D], by bias-free linear
              layers params/scale_linear and params/bias_linear (`kernel_init`): BigGAN's ccbn,
              c its shared class embedding and a chunk of z.
  """
  num_classes: int  # 'class': the classes
  use_running_average: bool = False
  axis_name: Optional[str] = None  # pmap's device axis: statistics of the global batch
  dtype: Any = jnp.float32
  condition: str = 'class'
  kernel_init: Callable = nn.linear.default_kernel_init  # 'vector': the linear layers'

  @nn.compact
  def __call__(self, x, labels):
    """x [B, ..., C], labels [B] (int; 'class') or c [B, D] ('vector') -> [B, ..., C]."""
    if self.condition not in CONDITIONS:
      raise ValueError(f'unknown condition {self.condition!r}; use one of {CONDITIONS}')
    x = nn.BatchNorm(use_running_average=self.use_running_average, use_scale=False,
                     use_bias=False, axis_name=self.axis_name, dtype=self.dtype,
                     **_BATCH_NORM)(x)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)  # broadcast over H, W
    if self.condition == 'vector':
      linear = lambda name: nn.Dense(x.shape[-1], use_bias=False, kernel_init=self.kernel_init,
                                     dtype=self.dtype, name=name)(labels).reshape(shape)
      return x * (1.0 + linear('scale_linear')) + linear('bias_linear')
    embed = lambda initializer, name: nn.Embed(
        self.num_classes, x.shape[-1], dtype=self.dtype, embedding_init=initializer,
        name=name)(labels).reshape(shape)
    scale = embed(nn.initializers.ones, 'scale_embed')  # [B, 1, 1, C] for images
    shift = embed(nn.initializers.zeros, 'bias_embed')
    return x * scale + shift


def norm_layer(kind: str, train: bool, spatial: bool, axis_name: Optional[str] = None,
               dtype: Any = jnp.float32, labels=None, num_classes: int = 0,
               condition: str = 'class', kernel_init: Optional[Callable] = None):
  """Returns a normalisation layer: 'batch', 'layer' or 'none'.

  `axis_name`: under pmap, batch statistics are averaged over that device axis (synced batch
  norm), so they are those of the global batch, as with jit over a mesh. `labels` (given only
  with kind 'batch'): conditional batch norm over `num_classes` classes, a function of x; with
  `condition` 'vector', `labels` is the vector c [B, D] of BigGAN's ccbn (`kernel_init`: its
  linear layers').
  """
  if kind == 'batch' and labels is not None:
    cbn = ConditionalBatchNorm(num_classes, not train, axis_name if train else None, dtype,
                               condition,
                               **({'kernel_init': kernel_init} if kernel_init else {}))
    return lambda x: cbn(x, labels)
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, axis_name=axis_name if train else None,
                        dtype=dtype, **_BATCH_NORM)
  if kind == 'layer':
    # WGAN-GP's layer norm normalises each example over all of (H, W, C).
    return nn.LayerNorm(reduction_axes=(-3, -2, -1) if spatial else -1, dtype=dtype)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"unknown norm {kind!r}; use 'batch', 'layer' or 'none'")


# How labels enter a conditional generator (model.gen_label_input); '' is the conditioning's
# own (`label_input_of`).
LABEL_INPUTS = ('embed', 'cbn', 'embed_cbn', 'concat')


def label_input_of(conditioning: str, norm: str, label_input: str = '') -> str:
  """How labels enter a generator: `label_input`, or by default 'cbn' for 'projection' with
  batch norm (SNGAN's and BigGAN's generators) and 'embed' otherwise (ACGAN's z times a label
  embedding; a generator without batch norm has no norm to condition). Raises ValueError for an
  unknown value, or 'cbn' / 'embed_cbn' in a generator without batch norm."""
  if label_input and label_input not in LABEL_INPUTS:
    raise ValueError(f'unknown model.gen_label_input {label_input!r}; use one of '
                     f'{", ".join(map(repr, LABEL_INPUTS))} or \'\' (the conditioning\'s)')
  if label_input in ('cbn', 'embed_cbn') and norm != 'batch':
    raise ValueError(f'model.gen_label_input {label_input!r} makes the generator\'s batch norms '
                     f"conditional, but model.gen_norm is {norm!r}: use gen_norm 'batch', or "
                     "gen_label_input 'embed' or 'concat'")
  if label_input:
    return label_input
  return 'cbn' if conditioning == 'projection' and norm == 'batch' else 'embed'


class GeneratorInput(nn.Module):
  """A generator's (first layer's input, labels for conditional batch norm or None), as
  `label_input_of` says labels enter it:

    'embed':     z times a learned label embedding (params/label_embed; ACGAN's Hadamard
                 product), (z * embed(y), None);
    'cbn':       (z, labels): the batch norms are conditional (`ConditionalBatchNorm`);
    'embed_cbn': both, (z * embed(y), labels);
    'concat':    z concatenated with the one-hot label (Mirza & Osindero's cGAN), (…, None).
  """
  num_classes: int = 0
  conditioning: str = 'acgan'
  norm: str = 'none'  # the generator's norm
  dtype: Any = jnp.float32
  label_input: str = ''  # model.gen_label_input; '' = the conditioning's

  @nn.compact
  def __call__(self, z, labels=None):
    """z [B, L], labels [B] (int) or None -> (x [B, L] ([B, L + K] for 'concat'), labels or
    None)."""
    conditioning = conditioning_of(self)
    if conditioning == 'none':
      return z, None
    if labels is None:
      raise ValueError('a conditional generator needs labels')
    how = label_input_of(conditioning, self.norm, self.label_input)
    if how == 'concat':
      one_hot = jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)
      return jnp.concatenate([z, one_hot], axis=-1), None
    if how != 'cbn':
      embed = nn.Embed(self.num_classes, z.shape[-1], dtype=self.dtype, name='label_embed')
      z = z * embed(labels)
    return z, (labels if how in ('cbn', 'embed_cbn') else None)


class CriticHeads(nn.Module):
  """A critic's (adv_logits [B], class_logits [B, K] or None) on its features phi [B, D],
  float32 whatever the compute dtype.

  'acgan': a class head beside the adversarial one; 'tac': and its twin, class_logits [B, 2K];
  'd2d': class_logits [B, K + embed_dim], the cosines of the features' unit embedding to the
  classes' unit proxies, then the embedding (ReACGAN's head; both normalised as F.normalize
  does, with the official normalize_d_embed).
  'projection': adv_logits are linear(phi) + <embed(y), phi> and there is no class head.
  """
  num_classes: int = 0
  conditioning: str = 'acgan'
  init_std: float = 0.0
  dtype: Any = jnp.float32
  # the heads' initialisers; None: init.kernel_init(init_std) and init.embed_init(init_std)
  kernel_init: Optional[Callable] = None
  embedding_init: Optional[Callable] = None
  embed_dim: int = 512  # 'd2d': the embedding's size (StudioGAN's d_embed_dim)

  @nn.compact
  def __call__(self, features, labels=None):
    """features [B, D], labels [B] (int; read by 'projection') -> (adv [B], class [B, K] or
    None)."""
    kernel_init = self.kernel_init or init.kernel_init(self.init_std)
    dense = lambda n, name: nn.Dense(n, kernel_init=kernel_init, dtype=self.dtype,
                                     name=name)(features)
    adv = dense(1, 'adv_head')[:, 0].astype(jnp.float32)
    conditioning = conditioning_of(self)
    if conditioning == 'projection':
      if labels is None:
        raise ValueError('a projection critic needs labels')
      embed = nn.Embed(self.num_classes, features.shape[-1],
                       embedding_init=self.embedding_init or init.embed_init(self.init_std),
                       dtype=self.dtype, name='projection_embed')(labels)  # [B, D]
      # Summed in float32: D runs to thousands (4 * 4 * 8w at 64x64), too many for bfloat16.
      return adv + jnp.sum(embed.astype(jnp.float32) * features.astype(jnp.float32), -1), None
    if conditioning == 'none':
      return adv, None
    if conditioning == 'd2d':
      unit = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
      embed = unit(dense(self.embed_dim, 'embed_head').astype(jnp.float32))  # [B, E]
      proxies = nn.Embed(self.num_classes, self.embed_dim,
                         embedding_init=self.embedding_init or init.embed_init(self.init_std),
                         name='class_proxies')
      proxies = unit(proxies.embedding.astype(jnp.float32))  # [K, E]
      cosines = jnp.matmul(embed, proxies.T, precision=jax.lax.Precision.HIGHEST)
      return adv, jnp.concatenate([cosines, embed], -1)
    logits = dense(self.num_classes, 'class_head')
    if conditioning == 'tac':
      logits = jnp.concatenate([logits, dense(self.num_classes, 'twin_head')], -1)
    return adv, logits.astype(jnp.float32)
