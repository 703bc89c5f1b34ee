"""The train state and the pure updates: n_critic critic updates and one generator update as one
function of (state, batch) -> (state, metrics, health), for jit over a mesh, or per device
under shard_map (parallelism 'pmap': `GAN.axis_name`)."""

import dataclasses
import functools
from typing import Any, Callable, Dict, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import ada, augment, gans, images, losses, models, optimizers, spectral, styles

Metrics = Dict[str, jax.Array]
Health = Dict[str, jax.Array]  # name -> bool: all of it finite ('metrics', 'gen.params', ...)


@flax.struct.dataclass
class PlayerState:
  """One player's (the generator's or the critic's) trainable state."""
  params: Any
  stats: Any                   # Flax 'batch_stats' collection ({} without batch norm)
  opt_state: Any
  # spectral norm's power-iteration vectors, weight path -> u ({} without spectral norm)
  spectral: Any = flax.struct.field(default_factory=dict)


@flax.struct.dataclass
class TrainState:
  step: jax.Array              # generator updates done so far
  key: jax.Array               # base PRNG key; step keys are fold_in(key, step)
  gen: PlayerState
  critic: PlayerState
  skipped: jax.Array           # iterations skipped for non-finite values (skip_nonfinite)
  # the generator's exponential moving average {'params', 'stats'} ({} with ema.decay 0)
  ema: Any = flax.struct.field(default_factory=dict)
  # LeCam's anchors {'real': alpha_R, 'fake': alpha_F}, float32 scalars: moving averages of the
  # critic's mean outputs on real and generated images ({} with loss.lecam_weight 0)
  lecam: Any = flax.struct.field(default_factory=dict)
  # ADA's {'p': the augmentation probability, 'signs': the sum of the critic updates' mean
  # sign(D(real)) since p last moved, 'count': how many}, float32 scalars ({} without ADA)
  ada: Any = flax.struct.field(default_factory=dict)
  # the path length penalty's {'mean': the moving average of the path lengths}, a float32
  # scalar ({} with loss.pl_weight 0)
  path_length: Any = flax.struct.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class GAN:
  """Everything static about a run: modules, optimizers, the grid point and its constants."""
  generator: nn.Module
  critic: nn.Module
  gen_tx: optax.GradientTransformation
  critic_tx: optax.GradientTransformation
  spec: gans.GanSpec
  latent_dim: int
  num_classes: int             # 0 for an unconditional GAN
  gp_weight: float
  clip_value: float
  aux_weight: float
  class_loss: str              # what the critic's class head learns from (losses.CLASS_LOSSES)
  skip_nonfinite: bool         # skip an iteration with a non-finite value instead of applying it
  gen_lr: Callable[[jax.Array], jax.Array]      # generator step -> learning rate
  critic_lr: Callable[[jax.Array], jax.Array]
  axis_name: Optional[str] = None  # pmap: the device axis to average gradients and metrics over
  # jit over a mesh of several devices: the sharding of an example axis (split over 'data').
  # The rows a step draws (_draw: z, labels, the penalty's weights, augmentation draws) are
  # constrained to it, so that every device computes its own examples' generator and critic
  # passes; left to XLA's propagation, a generator's whole batch may run on every device
  # (BigGAN's did). None: one device, or pmap.
  batch_sharding: Optional[jax.sharding.Sharding] = None
  d2d_temperature: float = 0.5  # class_loss 'd2d': the data-to-data cross-entropy's T and m_p
  d2d_margin: float = 0.98
  ema_decay: float = 0.0       # the generator's EMA (0: none)
  ema_start: int = 0           # generator updates before the EMA starts averaging (a copy before)
  gen_spectral: bool = False   # spectral norm on the generator's weights
  critic_spectral: bool = False
  r1_weight: float = 0.0       # gamma of R1 (lipschitz 'r1'): gamma / 2 E|grad D(x_real)|^2
  r1_every: int = 1            # R1 on every this-many-th critic update, scaled by it
  augment: Tuple[str, ...] = ()  # DiffAugment policy: where the critic sees images
  lecam_weight: float = 0.0    # lambda of LeCam regularisation (0: none, and no anchors)
  lecam_decay: float = 0.99    # the anchors' moving-average decay
  lecam_start: int = 1000      # generator updates before the anchors average and the penalty acts
  lecam_form: str = 'one_sided'  # losses.LECAM_FORMS
  spectral_estimate: str = 'u'  # how spectral norm estimates sigma (spectral.ESTIMATES)
  ortho_weight: float = 0.0    # BigGAN's orthogonal regularisation of G's kernels (0: off)
  gen_noise: bool = False      # G draws from a 'noise' PRNG stream (models.Family.noise)
  ema_rampup: float = 0.0      # the EMA's half-life at most this fraction of the images seen
  ada_spec: Optional[ada.Spec] = None  # ADA's pipeline (augment.ada; None: no ADA)
  ada_p: float = 0.0           # ADA's p at step 0
  ada_tuning: ada.Tuning = ada.Tuning()  # how p adapts (target None: a fixed p)
  style_mixing: float = 0.0    # the probability of a batch's style mixing (models.Family.styles)
  pl_weight: float = 0.0       # the path length penalty's weight (0: none, and no pl_mean)
  pl_every: int = 4            # the penalty on every this-many-th generator update, times this
  pl_batch_shrink: int = 2     # ... on the batch divided by this
  pl_decay: float = 0.01       # the path lengths' moving average's rate


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_gan(config, image_shape, num_classes: int, axis_name: Optional[str] = None,
              platform: Optional[str] = None,
              batch_sharding: Optional[jax.sharding.Sharding] = None) -> GAN:
  """The static GAN of a checked config (gan_jax/checks.py) and the data spec, for devices of
  `platform` ('cpu', 'gpu', 'tpu'; default: this host's backend); `batch_sharding`: see
  GAN."""
  spec = gans.resolve(config)
  num_classes = num_classes if spec.is_conditional else 0
  generator, critic = models.build(
      config.model, image_shape, num_classes, axis_name, DTYPES[config.dtype],
      conditioning=_conditioning(spec, config.loss.class_loss), platform=platform)
  return GAN(
      generator=generator, critic=critic, spec=spec, num_classes=num_classes,
      gen_tx=optimizers.make_optimizer(config.gen_optimizer),
      critic_tx=optimizers.make_optimizer(config.critic_optimizer),
      gen_lr=optimizers.lr_schedule(config.gen_optimizer, config.num_steps),
      critic_lr=optimizers.lr_schedule(config.critic_optimizer, config.num_steps),
      latent_dim=config.latent_dim, gp_weight=config.loss.gp_weight,
      clip_value=config.loss.clip_value, aux_weight=config.loss.aux_weight,
      class_loss=config.loss.class_loss, d2d_temperature=config.loss.d2d_temperature,
      d2d_margin=config.loss.d2d_margin,
      skip_nonfinite=config.skip_nonfinite, axis_name=axis_name, batch_sharding=batch_sharding,
      ema_decay=config.ema.decay,
      ema_start=config.ema.start_step, gen_spectral=config.model.gen_spectral_norm,
      critic_spectral=config.model.spectral_norm, r1_weight=config.loss.r1_weight,
      r1_every=config.loss.r1_every, augment=augment.parse_policy(config.augment.policy),
      lecam_weight=config.loss.lecam_weight, lecam_decay=config.loss.lecam_decay,
      lecam_start=config.loss.lecam_start_step, lecam_form=config.loss.lecam_form,
      spectral_estimate=config.model.spectral_estimate, ortho_weight=config.loss.ortho_weight,
      gen_noise=models.ARCHITECTURES[config.model.arch].noise, ema_rampup=config.ema.rampup,
      style_mixing=config.model.style_mixing, pl_weight=config.loss.pl_weight,
      pl_every=config.loss.pl_every, pl_batch_shrink=config.loss.pl_batch_shrink,
      pl_decay=config.loss.pl_decay, **_ada_fields(config.augment))


def _ada_fields(augment_config) -> dict:
  """The GAN's ADA fields of config.augment (none without augment.ada)."""
  if not augment_config.ada:
    return {}
  target = augment_config.ada_target or None  # 0: p stays at augment.ada_p
  return dict(ada_spec=ada.PIPELINES[augment_config.ada], ada_p=augment_config.ada_p,
              ada_tuning=ada.Tuning(target=target, interval=augment_config.ada_interval,
                                    kimg=augment_config.ada_kimg))


def _conditioning(spec: gans.GanSpec, class_loss: str) -> str:
  """How the models use labels (models/conditioning.py): a TAC critic has a twin class head,
  a D2D-CE critic ReACGAN's embedding and proxies."""
  if spec.projection:
    return 'projection'
  return class_loss if class_loss in ('tac', 'd2d') else 'acgan'


def init_state(gan: GAN, seed: int, image_shape) -> TrainState:
  """Initial parameters and optimizer states (pure; jit it with out_shardings to shard)."""
  return init_from_key(gan, jax.random.PRNGKey(seed), image_shape)


def init_from_key(gan: GAN, seed_key, image_shape) -> TrainState:
  """init_state of the seed whose PRNGKey is `seed_key` (vmapped over seeds: gan_jax/seeds.py)."""
  gen_key, critic_key, train_key = jax.random.split(seed_key, 3)
  z = jnp.zeros((1, gan.latent_dim), jnp.float32)
  labels = jnp.zeros((1,), jnp.int32) if gan.num_classes else None
  gen_vars = gan.generator.init(gen_key, z, labels, train=False)
  critic_inputs = (jnp.zeros((1, *image_shape), jnp.float32),) + (
      (labels,) if gan.spec.projection else ())
  critic_vars = gan.critic.init(critic_key, *critic_inputs, train=False)
  def player(variables, tx, key, normalised: bool):
    params = variables['params']
    # (keys folded from the player's own: the parameters' draws are those of a run without)
    vectors = (spectral.init_vectors(params, jax.random.fold_in(key, 1), gan.spectral_estimate)
               if normalised else {})
    return PlayerState(params, variables.get('batch_stats', {}), tx.init(params), vectors)
  gen = player(gen_vars, gan.gen_tx, gen_key, gan.gen_spectral)
  ema = {'params': gen.params, 'stats': gen.stats} if gan.ema_decay > 0 else {}
  # (the anchors' first value is a batch's mean: updates before lecam_start copy it)
  lecam = ({'real': jnp.zeros((), jnp.float32), 'fake': jnp.zeros((), jnp.float32)}
           if gan.lecam_weight > 0 else {})
  zero = jnp.zeros((), jnp.float32)
  ada_state = ({'p': jnp.asarray(gan.ada_p, jnp.float32), 'signs': zero, 'count': zero}
               if gan.ada_spec is not None else {})
  path_length = {'mean': zero} if gan.pl_weight > 0 else {}   # the official pl_mean starts at 0
  return TrainState(step=jnp.zeros((), jnp.int32), key=train_key, gen=gen,
                    critic=player(critic_vars, gan.critic_tx, critic_key, gan.critic_spectral),
                    skipped=jnp.zeros((), jnp.int32), ema=ema, lecam=lecam, ada=ada_state,
                    path_length=path_length)


def _apply(module, params, stats, *args, train: bool, rngs=None, **kwargs):
  """Applies a module (`rngs`: its PRNG streams, e.g. G's 'noise'; `kwargs`: apply's, e.g.
  `method`, and the method's); in training with batch norm also returns the updated
  statistics."""
  variables = {'params': params, **({'batch_stats': stats} if stats else {})}
  kwargs = {'rngs': rngs, **kwargs} if rngs else kwargs
  if train and stats:
    out, updates = module.apply(variables, *args, train=True, mutable=['batch_stats'], **kwargs)
    return out, updates['batch_stats']
  return module.apply(variables, *args, train=train, **kwargs), stats


def _draw(gan: GAN, sample_fn, batch_size: int):
  """`sample_fn(n)` -> [n, ...] random rows (or a tree of them) for this device's `batch_size`
  examples.

  Under pmap every device draws the global batch's rows and keeps its own slice, so the noise
  (and the augmentations' draws) are those of the jit path (and differ between devices). Under
  jit over a mesh the rows are split over its devices (GAN.batch_sharding): the same values
  (JAX's random bits do not depend on how they are sharded).
  """
  if gan.axis_name is None:
    rows = sample_fn(batch_size)
    if gan.batch_sharding is None:
      return rows
    return jax.tree.map(lambda r: jax.lax.with_sharding_constraint(r, gan.batch_sharding), rows)
  rows = sample_fn(batch_size * jax.lax.axis_size(gan.axis_name))
  start = jax.lax.axis_index(gan.axis_name) * batch_size
  return jax.tree.map(lambda r: jax.lax.dynamic_slice_in_dim(r, start, batch_size), rows)


def _pmean(gan: GAN, tree):
  return tree if gan.axis_name is None else jax.lax.pmean(tree, gan.axis_name)


def _sample_inputs(gan: GAN, key, batch_size: int):
  z_key, label_key = jax.random.split(key)
  z = _draw(gan, lambda n: jax.random.normal(z_key, (n, gan.latent_dim), jnp.float32),
            batch_size)
  labels = (_draw(gan, lambda n: jax.random.randint(label_key, (n,), 0, gan.num_classes),
                  batch_size) if gan.num_classes else None)
  return z, labels


# Folded into an update's key for its DiffAugment draws: a key of its own (fold_in(key, 1) would
# be split(key)[1], a key the update already uses).
AUGMENT_STREAM = 0x5A7E
# ... and for the generator's noise inputs (models.Family.noise; other families draw none).
NOISE_STREAM = 0x4015E
# ... and for ADA's draws.
ADA_STREAM = 0xADA
# ... and for style mixing's (the other z, the cutoff), and the path length penalty's.
MIXING_STREAM = 0x313C
PATH_LENGTH_STREAM = 0x9A7F
# The noise key of a sample drawn without one (updates.generate): the same z gives the same image.
FIXED_NOISE_KEY = 0x4015E


def _gen_rngs(gan: GAN, key):
  """The generator's PRNG streams in an update of key `key`: {'noise': ...} for a family
  with noise inputs, None otherwise (so other families' updates draw exactly what they did).
  Under pmap each device folds in its index: its rows get noise of their own."""
  if not gan.gen_noise:
    return None
  noise_key = jax.random.fold_in(key, NOISE_STREAM)
  if gan.axis_name is not None:
    noise_key = jax.random.fold_in(noise_key, jax.lax.axis_index(gan.axis_name))
  return {'noise': noise_key}


def _mapped(gan: GAN, params, stats, z, labels, key):
  """(ws [B, num_ws, w_dim], G's statistics after) of z and labels in training (w_avg moves).
  With style mixing (gan.style_mixing > 0), with that probability the ws from a cutoff on,
  uniform in [1, num_ws), are those of other z ~ N(0, I) with the same labels (mapped without
  moving w_avg): the official run_G. The other z are the global batch's rows, each device
  keeping its own (as _draw's); the cutoff is drawn once from `key` alone, so every device
  takes the same (as one GPU of the official does for its batch)."""
  ws, new_stats = _apply(gan.generator, params, stats, z, labels, train=True, method='map')
  if gan.style_mixing > 0:
    z_key, cutoff_key = jax.random.split(jax.random.fold_in(key, MIXING_STREAM))
    other_z = _draw(gan, lambda n: jax.random.normal(z_key, (n, gan.latent_dim), jnp.float32),
                    z.shape[0])
    other_ws, _ = _apply(gan.generator, params, stats, other_z, labels, train=True,
                         method='map', skip_w_avg_update=True)
    ws = styles.mix(ws, other_ws, styles.mixing_cutoff(cutoff_key, gan.style_mixing,
                                                       ws.shape[1]))
  return ws, new_stats


def _synthesized(gan: GAN, params, stats, ws, key):
  """G's images of ws in training (its noise inputs from `key`, as _generated's)."""
  return _apply(gan.generator, params, stats, ws, train=True, rngs=_gen_rngs(gan, key),
                method='synthesize')[0]


def _generated(gan: GAN, params, stats, z, labels, key):
  """(G's images of z and labels in training, its statistics after), the noise inputs and
  style mixing's draws from `key`. Without style mixing, G's plain call."""
  if gan.style_mixing == 0:
    return _apply(gan.generator, params, stats, z, labels, train=True, rngs=_gen_rngs(gan, key))
  ws, stats = _mapped(gan, params, stats, z, labels, key)
  return _synthesized(gan, params, stats, ws, key), stats


def _path_length(gan: GAN, params, stats, pl_mean, key, batch_size: int):
  """The path length penalty (the official Gpl): (penalty, pl_mean after). On
  batch_size // pl_batch_shrink (at least 1) fresh z and labels, G's images and ws (with style
  mixing) and y ~ N(0, I) / sqrt(H W), the lengths |d sum(images * y) / d ws| (styles.
  path_lengths); pl_mean moves toward their mean over the global batch (pmean'd under pmap),
  the penalty is the mean of (length - pl_mean)^2. w_avg moves in the update's main forward
  only (these statistics are dropped)."""
  pl_key = jax.random.fold_in(key, PATH_LENGTH_STREAM)
  input_key, noise_key = jax.random.split(pl_key)
  rows = max(1, batch_size // gan.pl_batch_shrink)
  z, labels = _sample_inputs(gan, input_key, rows)
  ws, _ = _mapped(gan, params, stats, z, labels, pl_key)
  synthesize = lambda ws: _synthesized(gan, params, stats, ws, pl_key)
  shape = jax.eval_shape(synthesize, ws).shape
  noise = _draw(gan, lambda n: jax.random.normal(noise_key, (n, *shape[1:]), jnp.float32), rows)
  _, lengths = styles.path_lengths(synthesize, ws, noise)
  pl_mean = styles.pl_mean_after(pl_mean, _pmean(gan, jnp.mean(lengths)), gan.pl_decay)
  return styles.pl_penalty(lengths, pl_mean), pl_mean


def _critic(gan: GAN, params, stats, x, labels, train: bool = True):
  """The critic on images `x`; a projection critic also sees their labels."""
  args = (x, labels) if gan.spec.projection else (x,)
  return _apply(gan.critic, params, stats, *args, train=train)


def critic_scores(gan: GAN, state: TrainState, x, labels=None) -> jax.Array:
  """The critic's adversarial outputs (raw: logits for a logistic loss) on images `x` in
  [-1, 1] (and, for a projection critic, their `labels`), in evaluation: no augmentation, its
  stored batch statistics."""
  return _critic(gan, state.critic.params, state.critic.stats, x, labels, train=False)[0][0]


def _augment(gan: GAN, key, x):
  """DiffAugment of images the critic is about to see (config.augment.policy; none: x). Under
  pmap the draws are the global batch's, each device keeping its rows (as the noise's)."""
  if not gan.augment:
    return x
  batch, height, width = x.shape[:3]
  draws = _draw(gan, lambda n: augment.draw(key, gan.augment, n, height, width), batch)
  return augment.apply(x, draws, gan.augment)


def _ada_view(gan: GAN, key, p, batch_size: int):
  """ADA's view of a batch of images: x -> augmented x, the draws fixed by `key` and `p`. Under
  pmap the draws are the global batch's, each device keeping its rows (as the noise's)."""
  draws = _draw(gan, lambda n: ada.draw(key, p, gan.ada_spec, n), batch_size)
  return lambda x: ada.apply(x, draws, gan.ada_spec)


def ada_after(gan: GAN, ada_state, real_sign, update: jax.Array, images_per_update: int):
  """ADA's state after critic update number `update` (0-based, over the whole run), whose real
  images had the mean sign(D) `real_sign`: after every ada_tuning.interval-th update p moves by
  ada.adjust_p on the mean of the interval's signs (as the official training loop does after
  every ada_interval-th minibatch), and the sums start again."""
  signs, count = ada_state['signs'] + real_sign, ada_state['count'] + 1.0
  tuning = gan.ada_tuning
  due = (update + 1) % tuning.interval == 0
  moved = ada.adjust_p(ada_state['p'], signs / count, images_per_update * tuning.interval,
                       tuning)
  zero = jnp.zeros((), jnp.float32)
  return {'p': jnp.where(due, moved, ada_state['p']), 'signs': jnp.where(due, zero, signs),
          'count': jnp.where(due, zero, count)}


def _heads(gan: GAN, class_logits):
  """(class head's logits [B, K], the TAC twin's [B, K] or None) of a critic's class_logits;
  with class_loss 'd2d', (the cosines to the class proxies [B, K], the unit embeddings
  [B, E])."""
  if gan.class_loss not in ('tac', 'd2d'):
    return class_logits, None
  return class_logits[:, :gan.num_classes], class_logits[:, gan.num_classes:]


def _class_loss(gan: GAN, logits, second, labels):
  """(the class loss, its accuracy) of one pass's _heads (`logits`, `second`) at `labels`: the
  cross-entropy of the logits, or with class_loss 'd2d' the data-to-data cross-entropy of the
  global batch (gathered from every device under pmap)."""
  if gan.class_loss != 'd2d':
    return losses.auxiliary_xent(logits, labels)
  if gan.axis_name is not None:
    logits, second, labels = (jax.lax.all_gather(x, gan.axis_name, tiled=True)
                              for x in (logits, second, labels))
  return losses.data_to_data_xent(second, logits, labels, gan.d2d_temperature, gan.d2d_margin)


def critic_update(gan: GAN, gen: PlayerState, critic: PlayerState, batch, key, r1_now=True,
                  lecam=None, step=0, ada_p=None):
  """One critic update on one real batch; returns (critic, metrics). `r1_now`: whether this
  update takes the R1 penalty (loss.r1_every > 1: every r1_every-th update). With LeCam
  (loss.lecam_weight > 0), `lecam` holds the anchors before this update and `step` is the
  generator step it belongs to; the anchors after it are the metrics lecam_alpha_real and
  lecam_alpha_fake (`lecam_of`). With ADA, `ada_p` is its p: the critic sees real and fake
  images through ADA's pipeline, R1 is the gradient at the real images before it (as in the
  official loss), and the metric ada_sign_real is the mean sign(D(real)) over the batch."""
  critic_stats = critic.stats
  input_key, eps_key = jax.random.split(key)
  real = images.to_signed(batch['image'])
  real_labels = batch.get('label')
  z, fake_labels = _sample_inputs(gan, input_key, real.shape[0])
  # The generator's batch statistics change only in its own update.
  gen_params, _ = spectral.normalise(gen.params, gen.spectral, gan.spectral_estimate)
  fake, _ = _generated(gan, gen_params, gen.stats, z, fake_labels, key)
  fake = jax.lax.stop_gradient(fake)
  if gan.augment:  # real and fake as the critic sees them, each example its own draw
    real_key, fake_key = jax.random.split(jax.random.fold_in(key, AUGMENT_STREAM))
    real, fake = _augment(gan, real_key, real), _augment(gan, fake_key, fake)
  r1_view, r1_real = (lambda x: x), real  # R1: the gradient of D(r1_view(x)) at x = r1_real
  if gan.ada_spec is not None:
    real_key, fake_key = jax.random.split(jax.random.fold_in(key, ADA_STREAM))
    r1_view = _ada_view(gan, real_key, ada_p, real.shape[0])
    real, fake = r1_view(real), _ada_view(gan, fake_key, ada_p, fake.shape[0])(fake)
  # one power iteration; the sigmas' vectors (spectral.py's estimates)
  vectors, sigma_vectors = spectral.power_step(critic.params, critic.spectral,
                                               gan.spectral_estimate)
  critic_loss_fn, _ = losses.ADVERSARIAL[gan.spec.adversarial]

  def loss_fn(params):
    params, sigmas = spectral.normalise(params, sigma_vectors, gan.spectral_estimate)
    # Real and fake pass separately, as in the reference code (batch norm sees each alone).
    (real_adv, real_cls), stats = _critic(gan, params, critic_stats, real, real_labels)
    (fake_adv, fake_cls), stats = _critic(gan, params, stats, fake, fake_labels)
    loss, metrics = critic_loss_fn(real_adv, fake_adv)
    if gan.ada_spec is not None:
      metrics['ada_sign_real'] = _pmean(gan, jnp.mean(
          jnp.sign(jax.lax.stop_gradient(real_adv)).astype(jnp.float32)))
    if gan.lecam_weight > 0:
      loss += _lecam(gan, lecam, step, real_adv, fake_adv, metrics)
    # Penalties take the critic's adversarial output at the real images' labels (a projection
    # critic scores the penalty's interpolates as of the real image's class).
    critic_fn = lambda x: _critic(gan, params, stats, x, real_labels)[0][0]
    if gan.spec.gradient_penalty:
      eps = _draw(gan, lambda n: losses.interpolation_weights(eps_key, n, real.ndim),
                  real.shape[0])
      x_hat = losses.interpolate(real, fake, eps)
      penalty, grad_norm = losses.gradient_penalty(critic_fn, x_hat)
      loss += gan.gp_weight * penalty
      metrics.update(gradient_penalty=penalty, grad_norm=grad_norm)
    if gan.spec.r1:  # lazy (r1_every > 1): computed on its updates only, scaled to the mean
      r1 = lambda: losses.r1_penalty(lambda x: critic_fn(r1_view(x)), r1_real)
      penalty = (r1() if gan.r1_every == 1 else
                 jax.lax.cond(r1_now, r1, lambda: jnp.zeros((), jnp.float32)))
      loss += 0.5 * gan.r1_weight * gan.r1_every * penalty
      metrics['r1_penalty'] = penalty
    if gan.spec.class_head:
      (real_cls, real_second), (fake_cls, fake_twin) = (_heads(gan, real_cls),
                                                         _heads(gan, fake_cls))
      real_xent, real_acc = _class_loss(gan, real_cls, real_second, batch['label'])
      fake_xent, fake_acc = losses.auxiliary_xent(fake_cls, fake_labels)
      if gan.class_loss == 'real_fake':
        loss += gan.aux_weight * (real_xent + fake_xent)
      elif gan.class_loss in ('real', 'd2d'):  # 'd2d': fake_xent is only for its accuracy
        loss += gan.aux_weight * real_xent
      else:  # 'tac': the twin learns the generated images' classes
        twin_xent, twin_acc = losses.auxiliary_xent(fake_twin, fake_labels)
        loss += gan.aux_weight * (real_xent + twin_xent)
        metrics.update(twin_loss_fake=twin_xent, twin_acc_fake=twin_acc)
      metrics.update(aux_loss_real=real_xent, aux_acc_real=real_acc, aux_acc_fake=fake_acc)
    if sigmas:
      metrics['critic_sigma_max'] = jnp.max(jnp.stack(list(sigmas.values())))
    metrics['critic_loss'] = loss
    return loss, (stats, metrics)

  grads, (critic_stats, metrics) = jax.grad(loss_fn, has_aux=True)(critic.params)
  grads = _pmean(gan, grads)
  updates, opt_state = gan.critic_tx.update(grads, critic.opt_state, critic.params)
  critic_params = optax.apply_updates(critic.params, updates)
  if gan.spec.weight_clipping:  # WGAN's post-update: every critic weight into [-c, c]
    critic_params = jax.tree.map(lambda p: jnp.clip(p, -gan.clip_value, gan.clip_value),
                                 critic_params)
  return PlayerState(critic_params, critic_stats, opt_state, vectors), metrics


def _lecam(gan: GAN, anchors, step, real_adv, fake_adv, metrics):
  """LeCam's term of the critic's loss, lambda R_LC, as StudioGAN and the authors' code add it:
  the anchors first take this update's mean outputs (over the global batch: pmean'd under
  pmap), then the penalty is taken against them. Before generator update lecam_start the
  anchors copy the batch's means; the penalty counts from the update after it (its logged
  value is 0 until then). Adds the anchors and the penalty to `metrics`."""
  real_mean = _pmean(gan, jnp.mean(jax.lax.stop_gradient(real_adv).astype(jnp.float32)))
  fake_mean = _pmean(gan, jnp.mean(jax.lax.stop_gradient(fake_adv).astype(jnp.float32)))
  anchors = losses.lecam_anchors(anchors, real_mean, fake_mean, gan.lecam_decay,
                                 copy=step < gan.lecam_start)
  penalty = jnp.where(step > gan.lecam_start,
                      losses.lecam_penalty(real_adv, fake_adv, anchors, gan.lecam_form), 0.0)
  metrics.update(lecam_penalty=penalty, lecam_alpha_real=anchors['real'],
                 lecam_alpha_fake=anchors['fake'])
  return gan.lecam_weight * penalty


def lecam_of(metrics):
  """The LeCam anchors a critic update's metrics carry (critic_update)."""
  return {'real': metrics['lecam_alpha_real'], 'fake': metrics['lecam_alpha_fake']}


def gen_update(gan: GAN, gen: PlayerState, critic: PlayerState, key, batch_size: int,
               ada_p=None, path_length=None, pl_now=True):
  """One generator update; returns (gen, metrics). With ADA (`ada_p`: its p) the critic sees
  the generated images through ADA's pipeline. With the path length penalty
  (loss.pl_weight > 0), `path_length` holds pl_mean before the update and `pl_now` says
  whether this update takes the penalty (lazy, pl_every > 1: every pl_every-th update, the
  penalty times pl_every); the metric pl_mean is the average after it."""
  z, labels = _sample_inputs(gan, key, batch_size)
  _, gen_loss_fn = losses.ADVERSARIAL[gan.spec.adversarial]
  vectors, sigma_vectors = spectral.power_step(gen.params, gen.spectral,
                                               gan.spectral_estimate)  # one power iteration
  # The critic as its last update left it (spectral norm from its kept vectors).
  critic_params, _ = spectral.normalise(critic.params, critic.spectral, gan.spectral_estimate)

  def loss_fn(params):
    ortho = losses.orthogonal_penalty(params) if gan.ortho_weight else None  # raw weights
    params, _ = spectral.normalise(params, sigma_vectors, gan.spectral_estimate)
    fake, stats = _generated(gan, params, gen.stats, z, labels, key)
    if gan.augment:
      fake = _augment(gan, jax.random.fold_in(key, AUGMENT_STREAM), fake)
    if gan.ada_spec is not None:
      fake = _ada_view(gan, jax.random.fold_in(key, ADA_STREAM), ada_p, batch_size)(fake)
    # The critic's statistics are not updated by the generator's step.
    (fake_adv, fake_cls), _ = _critic(gan, critic_params, critic.stats, fake, labels)
    loss, metrics = gen_loss_fn(fake_adv)
    if gan.spec.class_head:
      fake_cls, second = _heads(gan, fake_cls)
      xent, _ = _class_loss(gan, fake_cls, second, labels)
      loss += gan.aux_weight * xent
      metrics['aux_loss_fake'] = xent
      if gan.class_loss == 'tac':  # away from the twin's view of the generated classes
        twin_xent, _ = losses.auxiliary_xent(second, labels)
        loss -= gan.aux_weight * twin_xent
    if ortho is not None:
      loss += gan.ortho_weight * ortho
      metrics['ortho_penalty'] = ortho
    if gan.pl_weight > 0:  # lazy (pl_every > 1): on its updates only, scaled to the mean
      pl = lambda: _path_length(gan, params, gen.stats, path_length['mean'], key, batch_size)
      penalty, pl_mean = (pl() if gan.pl_every == 1 else jax.lax.cond(
          pl_now, pl, lambda: (jnp.zeros((), jnp.float32), path_length['mean'])))
      loss += gan.pl_weight * gan.pl_every * penalty
      metrics.update(pl_penalty=penalty, pl_mean=pl_mean)
    metrics['gen_loss'] = loss
    return loss, (stats, metrics)

  grads, (gen_stats, metrics) = jax.grad(loss_fn, has_aux=True)(gen.params)
  grads = _pmean(gan, grads)
  updates, opt_state = gan.gen_tx.update(grads, gen.opt_state, gen.params)
  return PlayerState(optax.apply_updates(gen.params, updates), gen_stats, opt_state,
                     vectors), metrics


def ema_update(ema, gen: PlayerState, step, decay: float, start: int, rampup: float = 0.0):
  """The generator's EMA after its update `step` (0-based): a copy of `gen`'s parameters and
  batch statistics before update `start`, then decay * ema + (1 - decay) * gen.

  With `rampup` > 0 (StyleGAN2-ADA's ema_rampup), the half-life in images is at most `rampup`
  times the images seen before the update: with B images per update and decay
  0.5 ** (B / half-life), the rate is min(decay, 0.5 ** (1 / (rampup * step))), B cancelling
  (0 at step 0: a copy)."""
  rate = decay
  if rampup > 0:
    ramped = jnp.power(0.5, 1.0 / (rampup * step.astype(jnp.float32)))  # step 0: 0.5 ** inf
    rate = jnp.minimum(decay, ramped)
  rate = jnp.where(step < start, 0.0, rate).astype(jnp.float32)
  blend = lambda e, x: rate * e + (1.0 - rate) * x
  return {'params': jax.tree.map(blend, ema['params'], gen.params),
          'stats': jax.tree.map(blend, ema['stats'], gen.stats)}


def train_step(state: TrainState, batch, *, gan: GAN) -> Tuple[TrainState, Metrics, Health]:
  """One iteration: n_critic critic updates (a scan over batch's leading axis), one G update.

  Args:
    state: the TrainState.
    batch: {'image': [n_critic, B, H, W, C], 'label': [n_critic, B] (conditional only)}.
    gan: static parts.

  Returns:
    (new state, metrics, health): critic metrics are means over the n_critic updates; health
    says which of the metrics and the new state's parts are all finite.
  """
  n_critic, batch_size = batch['image'].shape[:2]
  keys = jax.random.split(jax.random.fold_in(state.key, state.step), n_critic + 1)

  # ADA moves p by the real images of the whole batch (under pmap: of every device)
  images_per_update = batch_size * (jax.lax.axis_size(gan.axis_name) if gan.axis_name else 1)

  def critic_body(carry, inputs):
    critic, lecam, ada_state = carry  # the LeCam anchors, ADA's p ({} without)
    one_batch, key, *index = inputs
    # the critic updates are numbered step * n_critic + i over the run
    update = state.step * n_critic + index[0] if index else None
    # lazy R1: on the critic updates that r1_every divides
    r1_now = update % gan.r1_every == 0 if index else True
    critic, metrics = critic_update(gan, state.gen, critic, one_batch, key, r1_now, lecam,
                                    state.step, ada_state['p'] if ada_state else None)
    if ada_state:
      ada_state = ada_after(gan, ada_state, metrics['ada_sign_real'], update, images_per_update)
    return (critic, lecam_of(metrics) if lecam else lecam, ada_state), metrics

  gen_lr, critic_lr = gan.gen_lr(state.step), gan.critic_lr(state.step)
  critic = state.critic.replace(
      opt_state=optimizers.set_learning_rate(state.critic.opt_state, critic_lr))
  numbered = (gan.spec.r1 and gan.r1_every > 1) or bool(state.ada)  # lazy R1 or ADA
  inputs = (batch, keys[1:]) + ((jnp.arange(n_critic),) if numbered else ())
  (critic, lecam, ada_state), c_metrics = jax.lax.scan(
      critic_body, (critic, state.lecam, state.ada), inputs)
  gen = state.gen.replace(opt_state=optimizers.set_learning_rate(state.gen.opt_state, gen_lr))
  # lazy path length penalty: on the generator updates that pl_every divides
  gen, g_metrics = gen_update(gan, gen, critic, keys[0], batch_size,
                              ada_state['p'] if ada_state else None, state.path_length,
                              state.step % gan.pl_every == 0)
  path_length = {'mean': g_metrics['pl_mean']} if state.path_length else {}
  ema = state.ema
  if gan.ema_decay > 0:
    ema = ema_update(state.ema, gen, state.step, gan.ema_decay, gan.ema_start, gan.ema_rampup)
  metrics = _pmean(gan, {**jax.tree.map(jnp.mean, c_metrics), **g_metrics})
  if lecam:  # the anchors after the iteration's last critic update (the others: means)
    metrics.update(lecam_alpha_real=lecam['real'], lecam_alpha_fake=lecam['fake'])
  if ada_state:  # p after the iteration
    metrics['ada_p'] = ada_state['p']
  metrics.update(n_critic=jnp.asarray(n_critic, jnp.float32), gen_learning_rate=gen_lr,
                 critic_learning_rate=critic_lr)
  new_state = state.replace(gen=gen, critic=critic, ema=ema, lecam=lecam, ada=ada_state,
                            path_length=path_length)
  health = {'metrics': all_finite(metrics)}
  for player in ('gen', 'critic'):
    for part in ('params', 'stats', 'opt_state', 'spectral'):
      if part != 'spectral' or getattr(new_state, player).spectral:
        health[f'{player}.{part}'] = all_finite(getattr(getattr(new_state, player), part))
  if ema:
    health['ema'] = all_finite(ema)
  if lecam:
    health['lecam'] = all_finite(lecam)
  if ada_state:
    health['ada'] = all_finite(ada_state)
  if path_length:
    health['path_length'] = all_finite(path_length)
  finite = jnp.all(jnp.stack(list(health.values())))
  if gan.skip_nonfinite:  # keep the old state; the data and the step move on
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    new_state = new_state.replace(skipped=state.skipped + (~finite).astype(jnp.int32))
  metrics['skipped'] = new_state.skipped.astype(jnp.float32)
  return new_state.replace(step=state.step + 1), metrics, health


def all_finite(tree) -> jax.Array:
  """True when every floating-point value in `tree` is finite (one scalar reduction)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def train_steps(state: TrainState, batches, *, gan: GAN):
  """K iterations in one call (config.steps_per_call): a scan of train_step over batches'
  leading axis ([K, n_critic, B, ...]); metrics and health come back stacked, [K] per key."""
  def body(state, batch):
    state, metrics, health = train_step(state, batch, gan=gan)
    return state, (metrics, health)
  state, (metrics, health) = jax.lax.scan(body, state, batches)
  return state, metrics, health


def generator_variables(state: TrainState, use_ema: bool = True,
                        spectral_estimate: str = 'u'):
  """(params, batch stats) the generator samples with: its EMA's when it has one and `use_ema`,
  else its own; spectrally normalised with its kept vectors when it has them (the trained
  generator's vectors also for the EMA's weights: an estimate of their sigma from below, close
  where the average is close to the weights)."""
  source = state.ema if use_ema and state.ema else {'params': state.gen.params,
                                                     'stats': state.gen.stats}
  return (spectral.normalise(source['params'], state.gen.spectral, spectral_estimate)[0],
          source['stats'])


def generate(gan: GAN, state: TrainState, z, labels=None, use_ema: bool = True,
             noise_key=None, truncation_psi: Optional[float] = None):
  """Samples in [-1, 1] from G in inference mode (batch norm uses running averages): the EMA
  generator when the run keeps one (ema.decay > 0) and `use_ema`, else the trained one. A
  generator with noise inputs (gan.gen_noise) draws them from `noise_key`, or without one from
  a fixed key (the same z and labels, the same images); other generators ignore it. A
  generator with ws (models.Family.styles) takes `truncation_psi` (a Python float): every w
  pulled toward w_avg, w_avg + psi (w - w_avg)."""
  params, stats = generator_variables(state, use_ema, gan.spectral_estimate)
  rngs = None
  if gan.gen_noise:
    rngs = {'noise': jax.random.PRNGKey(FIXED_NOISE_KEY) if noise_key is None else noise_key}
  kwargs = {} if truncation_psi is None else {'truncation_psi': truncation_psi}
  return _apply(gan.generator, params, stats, z, labels, train=False, rngs=rngs, **kwargs)[0]
