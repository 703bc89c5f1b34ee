"""Every config field, declared once: its default, the values it allows, whether a resumed run
may change it, and its one-line doc.

configs/common.py builds the shared config from this table, gan_jax/checks.py and the
evaluator check values against it, gan_jax/rundir.py reads which fields a resume may change,
and docs/config.md is printed from it (`python -m gan_jax.fields > docs/config.md`). A new
option is a row here plus the code that uses it.
"""

import dataclasses
import math
import sys
from typing import Any, Dict, Optional, Tuple

from gan_jax import (ada, image_files, input_pipeline, layers, losses, models, optimizers,
                     resize, spectral)

INF = math.inf
FROM_ARGS = object()  # a default set by the config file's argument (gan, dataset, its shape)


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field (`name`: its dotted path)."""
  name: str
  default: Any
  doc: str
  interval: str = ''        # allowed numbers, e.g. '[0, 1)', '(0, inf)', '[1, inf)'
  bound: str = ''           # what the interval's bound means, for the refusal's sentence
  choices: Tuple[Any, ...] = ()
  resume: bool = False      # a resumed run may change it
  # Added after runs began: a config.json without it ran as `default` does (a resumed run
  # that sets another value is refused like any change). Fields without it are compared only
  # when the old config.json has them.
  absent_is_default: bool = False

  @property
  def limits(self) -> Optional[Tuple[float, float, bool, bool]]:
    """(low, high, low is open, high is open) of `interval`, or None."""
    if not self.interval:
      return None
    low, high = (part.strip() for part in self.interval[1:-1].split(','))
    return (float(low), float(high), self.interval[0] == '(', self.interval[-1] == ')')


F = Field
_BATCH_NORMS = ('batch', 'layer', 'none')
_OPTIMIZER = (  # gen_optimizer.* and critic_optimizer.*
    F('name', 'adam', "'adam' | 'rmsprop'", choices=tuple(optimizers.OPTIMIZERS)),
    F('learning_rate', 1e-4, 'learning rate at step 0', '(0, inf)', 'a learning rate',
      resume=True),
    F('schedule', 'constant', "'constant' | 'linear' (to 0 at num_steps, per G step)",
      choices=optimizers.SCHEDULES),
    F('b1', 0.0, 'Adam beta1', '[0, 1)', 'an Adam beta, below 1'),
    F('b2', 0.9, 'Adam beta2', '[0, 1)', 'an Adam beta, below 1'),
    F('decay', 0.99, "RMSprop decay (PyTorch's alpha)", '[0, 1)', "RMSprop's decay, below 1"),
)

FIELDS = (
    F('gan', FROM_ARGS, "paper preset: 'wgan' | 'wgan_gp' | 'dcgan' | 'acgan' | 'sngan' | "
      "'biggan' | 'stylegan2' (gan_jax/gans.py)"),
    F('acgan_adversarial', '', "old ACGAN field, still read: 'nonsaturating' | "
      "'wasserstein_clip' | 'wasserstein_gp'"),
    F('seed', 0, 'PRNG seed: parameters, noise and data order', f'[0, {2**32 - 1}]',
      'a PRNG seed'),
    F('num_seeds', 1, 'train seeds seed, seed + 1, ... at once, as one stacked state (1: one '
      'run)', '[1, inf)', 'runs trained at once, with seeds seed, seed + 1, ...',
      absent_is_default=True),
    F('batch_size', 64, 'global batch size (split over all devices)', '[1, inf)',
      'images per iteration, over all devices'),
    F('num_steps', 100_000, 'generator updates', '[0, inf)', 'generator updates', resume=True),
    F('n_critic', 5, 'critic updates per generator update', '[1, inf)',
      'critic updates per generator update'),
    F('critic_boost.iters', 0, 'WGAN schedule: critic updates on boosted steps (0: off)',
      '[0, inf)', '0 turns the boost off'),
    F('critic_boost.first_steps', 0, 'boost the first this-many generator updates', '[0, inf)',
      'generator updates'),
    F('critic_boost.every', 0, '... and every this-many-th one (0: never)', '[0, inf)',
      '0: never'),
    F('latent_dim', 128, 'size of z', '[1, inf)', 'the size of z'),

    F('dataset.name', FROM_ARGS, "a name in input_pipeline.DATASETS ('mnist', 'celeb_a', ...) "
      "or 'tfds:NAME'"),
    F('dataset.path', '', 'IDX directory, .npz or folder of images (local or gs://); when set, '
      'no TFDS', resume=True),
    F('dataset.data_dir', '', "prepared TFDS directory (e.g. a bucket); '' = TFDS default",
      resume=True),
    F('dataset.download', True, 'TFDS: download and prepare when data_dir lacks the dataset',
      resume=True),
    F('dataset.split', 'train', "'train' | 'test' (TFDS split strings work for TFDS)"),
    F('dataset.subset', 1.0, 'train on this fraction of the split: one fixed random subset, '
      'whatever the seed (1: all)', '(0, 1]', 'the fraction of the split trained on',
      absent_is_default=True),
    F('dataset.float_range', 'unit', "float image data (.npz): 'unit' in [0, 1] | 'signed' in "
      '[-1, 1]', choices=tuple(input_pipeline.FLOAT_RANGES)),
    F('dataset.image_size', FROM_ARGS, 'TFDS, folders, digits: the side images are cropped and '
      "resized to (not IDX/.npz); the named dataset's size", '[1, inf)', 'pixels', resume=True),
    F('dataset.storage', 'auto', "folders, TFDS: 'memory' (decoded once) | 'stream' (decoded "
      "per batch) | 'auto'", resume=True),
    F('dataset.channels', 0, "1 (grayscale) | 3 (RGB) | 0: the data's own (a folder's: 3 if "
      "its images have colour; IDX/.npz: their own; a named dataset's)",
      choices=(0, *image_files.CHANNELS), resume=True),
    F('dataset.image_key', '', "TFDS: the image feature; '' = 'image' or the only Image "
      'feature'),
    F('dataset.label_key', '', "TFDS: the ClassLabel feature; '' = 'label' if there is one; "
      "'none'"),

    F('model.arch', 'conv', "'conv' | 'resnet' | 'mlp' | 'biggan' | 'stylegan2'",
      choices=models.ARCHS),
    F('model.width', 64, "conv: channels of the finest layer (DIM); mlp: hidden units; biggan: "
      "G's ch", '[1, inf)', 'channels or units'),
    F('model.critic_width', 0, "the critic's width, if not model.width (0)", '[0, inf)',
      'channels or units; 0: model.width', absent_is_default=True),
    F('model.critic_pool', 'mean', "resnet up to 32x32: the critic's global pool, 'mean' | "
      "'sum' (SNGAN)", choices=('mean', 'sum'), absent_is_default=True),
    F('model.depth', 3, 'mlp: hidden layers', '[1, inf)', 'hidden layers'),
    F('model.kernel_size', 5, 'conv: kernel side', '[1, inf)', 'the kernel side'),
    F('model.gen_norm', 'none', "generator normalisation: 'batch' | 'layer' | 'none'",
      choices=_BATCH_NORMS),
    F('model.critic_norm', 'none', "critic normalisation: 'batch' | 'layer' | 'none'",
      choices=_BATCH_NORMS),
    F('model.init_std', 0.0, 'N(0, init_std) kernel init; 0 = Flax default (biggan: orthogonal)',
      '[0, inf)', "0: Flax's default"),
    F('model.attention_resolution', 64, 'biggan: self-attention after the blocks whose output '
      'side is this (0: none; 64, BigGAN\'s, has none at 32 px)', '[0, inf)',
      'the side of the maps attended to; 0: none', absent_is_default=True),
    F('model.hierarchical', True, "biggan: z split into chunks, one into G's linear layer and "
      "one per block's conditional batch norms (False: z whole into the linear layer)",
      choices=(False, True), absent_is_default=True),
    F('model.shared_dim', 128, "biggan: G's shared class embedding's size (0: latent_dim)",
      '[0, inf)', "the embedding's size; 0: latent_dim", absent_is_default=True),
    F('model.channel_base', 32768, 'stylegan2: channels at resolution r are min(channel_base '
      '/ r, channel_max), in G and D', '[1, inf)', 'channels times pixels',
      absent_is_default=True),
    F('model.channel_max', 512, 'stylegan2: ... at most this many', '[1, inf)', 'channels',
      absent_is_default=True),
    F('model.w_dim', 512, "stylegan2: the size of w, the mapping network's output", '[1, inf)',
      'the size of w', absent_is_default=True),
    F('model.mapping_layers', 8, "stylegan2: the mapping network's dense layers", '[1, inf)',
      'dense layers', absent_is_default=True),
    F('model.conv_clamp', 256.0, "stylegan2: every conv's output clamped to +-this (0: none)",
      '[0, inf)', 'the clamp; 0: none', absent_is_default=True),
    F('model.mbstd_group_size', 4, "stylegan2: the critic's minibatch standard deviation over "
      'groups of this many images (0: the whole batch; must divide the batch it sees)',
      '[0, inf)', 'images per group; 0: the batch', absent_is_default=True),
    F('model.critic_architecture', 'resnet', "stylegan2: the critic's blocks, 'resnet' (1x1 "
      "skips) | 'orig' (none: the ADA paper's CIFAR-10)",
      choices=models.stylegan2.CRITIC_ARCHITECTURES, absent_is_default=True),
    F('model.noise_mode', 'random', "stylegan2: G's noise inputs, 'random' (drawn per image) | "
      "'const' (fixed per layer) | 'none'", choices=models.stylegan2.NOISE_MODES,
      absent_is_default=True),
    F('model.style_mixing', 0.0, "stylegan2: the probability that a batch's ws from a cutoff "
      'uniform in [1, num_ws) on are those of other z, in training (StyleGAN2: 0.9; 0: none)',
      '[0, 1]', 'a probability', absent_is_default=True),
    F('model.conv_impl', 'auto', "conv layers (every arch's, StyleGAN2's one-group ones too): "
      "'hybrid' | 'fast' | 'xla' | 'auto' (CPU: hybrid) | 'mkl' (CPU: the products in "
      "bfloat16 by oneMKL, AMX where there is one; requirements-mkl.txt) | 'bf16' (the "
      "products in bfloat16 by XLA's own dot: AVX512-BF16 CPUs); docs/speed.md",
      choices=layers.IMPLS),
    F('model.conditional', '', "'none' | 'acgan' (label-conditioned G, class head on D) | "
      "'projection'; '' = gan's"),
    F('model.class_embed_dim', 512, "loss.class_loss 'd2d': the size of the critic's class "
      "embedding and proxies (StudioGAN's d_embed_dim)", '[1, inf)', 'an embedding size',
      absent_is_default=True),
    F('model.gen_label_input', '', "conditional G: how labels enter it, 'embed' (z times a "
      "label embedding) | 'cbn' (conditional batch norm) | 'embed_cbn' (both) | 'concat' (z and "
      "the one-hot label); '' = the conditioning's (projection with batch norm: cbn; else embed)",
      choices=('', *models.LABEL_INPUTS), absent_is_default=True),
    F('model.spectral_norm', False, "spectral normalisation of the critic's weights (one power "
      'iteration per update)', choices=(False, True), absent_is_default=True),
    F('model.gen_spectral_norm', False, "... and of the generator's", choices=(False, True),
      absent_is_default=True),
    F('model.spectral_estimate', 'u', "spectral norm's sigma: 'u' (|W u| of the u after the "
      "update's power iteration) | 'uv' (Miyato et al.'s u^T W v from the u before it, an "
      "embedding's u over its classes: torch's spectral_norm, BigGAN-PyTorch)",
      choices=spectral.ESTIMATES, absent_is_default=True),

    F('loss.adversarial', '', "'nonsaturating' | 'wasserstein' | 'hinge' | 'least_squares'; "
      "'' = the preset's (config.gan)"),
    F('loss.lipschitz', '', "'none' | 'clip' (weight clipping) | 'gp' (gradient penalty) | "
      "'r1'; '' = gan's"),
    F('loss.gp_weight', 10.0, "lambda of the gradient penalty (lipschitz 'gp')", '[0, inf)',
      "the penalty's lambda"),
    F('loss.clip_value', 0.01, "c of the weight clipping (lipschitz 'clip')", '[0, inf)',
      'the clipping bound c'),
    F('loss.aux_weight', 1.0, 'weight of the ACGAN auxiliary class cross-entropy', '[0, inf)',
      'the class loss weight'),
    F('loss.class_loss', 'real_fake', "what the ACGAN critic's class head learns from: "
      "'real_fake' (the paper: real and generated images) | 'real' (real images only, "
      "StudioGAN's ACGAN) | 'tac' (real only, and a twin head on the generated: TAC-GAN) | "
      "'d2d' (real only, ReACGAN's data-to-data cross-entropy on a class embedding)",
      choices=losses.CLASS_LOSSES, absent_is_default=True),
    F('loss.d2d_temperature', 0.5, "class_loss 'd2d': the temperature T of the data-to-data "
      "cross-entropy (ReACGAN's CIFAR-10 setting)", '(0, inf)', 'a temperature',
      absent_is_default=True),
    F('loss.d2d_margin', 0.98, "class_loss 'd2d': the margin m_p of the data-to-data "
      'cross-entropy (ReACGAN)', '[-1, 1]', 'a cosine margin', absent_is_default=True),
    F('loss.r1_weight', 10.0, "gamma of R1 (lipschitz 'r1'): the loss adds gamma / 2 "
      'E|grad D(x_real)|^2', '[0, inf)', "R1's gamma", absent_is_default=True),
    F('loss.r1_every', 1, 'R1 on every this-many-th critic update only, times this (lazy '
      'regularisation)', '[1, inf)', 'critic updates between R1 penalties',
      absent_is_default=True),
    F('loss.pl_weight', 0.0, "stylegan2: weight of the path length penalty E[(|J_w^T y| - a)^2] "
      "in G's loss, a the lengths' moving average (StyleGAN2: 2; 0: off)", '[0, inf)',
      "the penalty's weight", absent_is_default=True),
    F('loss.pl_every', 4, 'the path length penalty on every this-many-th generator update only, '
      'times this (lazy regularisation)', '[1, inf)', 'generator updates between penalties',
      absent_is_default=True),
    F('loss.pl_batch_shrink', 2, "the path length penalty's batch: the batch divided by this",
      '[1, inf)', 'a divisor of the batch', absent_is_default=True),
    F('loss.pl_decay', 0.01, "the rate of the path lengths' moving average a", '[0, 1]',
      'a rate', absent_is_default=True),
    F('loss.lecam_weight', 0.0, 'lambda of LeCam regularisation (Tseng et al. 2021) in the '
      "critic's loss (0: off); 0.3 in the paper's CIFAR runs", '[0, inf)', "LeCam's lambda",
      absent_is_default=True),
    F('loss.lecam_decay', 0.99, "LeCam: decay of the anchors, moving averages of the critic's "
      'mean outputs on real and generated images', '[0, 1)', "the anchors' decay, below 1",
      absent_is_default=True),
    F('loss.lecam_start_step', 1000, 'LeCam: generator updates in which the anchors copy the '
      "batch's means, the penalty acting from the one after", '[0, inf)',
      'generator updates before the anchors average', absent_is_default=True),
    F('loss.lecam_form', 'one_sided', "LeCam: 'one_sided' E[relu(D(x) - a_F)^2] + "
      "E[relu(a_R - D(G(z)))^2] (the authors' code, StudioGAN) | 'two_sided' (the paper's "
      'equation 3)', choices=losses.LECAM_FORMS, absent_is_default=True),
    F('loss.ortho_weight', 0.0, "BigGAN's orthogonal regularisation of G: beta of beta * "
      'sum ||W^T W * (1 - I)||_F^2 over its kernels (0: off; BigGAN: 1e-4)', '[0, inf)',
      "the penalty's beta", absent_is_default=True),
    F('ema.decay', 0.0, "the generator's exponential moving average, e.g. 0.999 (0: off); "
      'samples use it', '[0, 1)', "the EMA's decay, below 1; 0: off", absent_is_default=True),
    F('ema.start_step', 0, 'generator updates before the average starts (a copy until then)',
      '[0, inf)', 'generator updates before the EMA averages', absent_is_default=True),
    F('ema.rampup', 0.0, "the EMA's half-life at most this fraction of the images seen "
      "(StyleGAN2-ADA's ramp-up, 0.05; 0: ema.decay throughout)", '[0, inf)',
      'a fraction of the images seen; 0: none', absent_is_default=True),
    F('augment.policy', '', "DiffAugment: a comma list of 'color', 'translation', 'cutout' "
      "('': none)", absent_is_default=True),
    F('augment.ada', '', "ADA (StyleGAN2-ADA): the pipeline, 'bgc' (the paper's) | 'bg' | 'blit' "
      "| 'geom' | 'color' ('': none)", choices=('', *ada.PIPELINES), absent_is_default=True),
    F('augment.ada_p', 0.0, "ADA's p at step 0 (with ada_target 0: throughout)", '[0, 1]',
      'a probability', absent_is_default=True),
    F('augment.ada_target', 0.6, "ADA: the E[sign(D(real))] p is moved toward (0: a fixed p)",
      '[0, 1)', 'a mean sign, below 1; 0: a fixed p', absent_is_default=True),
    F('augment.ada_interval', 4, 'ADA: critic updates between moves of p', '[1, inf)',
      'critic updates', absent_is_default=True),
    F('augment.ada_kimg', 500.0, 'ADA: thousands of real images for p to move by 1 (its speed)',
      '(0, inf)', 'thousands of images', absent_is_default=True),
    *(dataclasses.replace(f, name=f'{player}_optimizer.{f.name}', doc=f"{player}'s {f.doc}")
      for player in ('gen', 'critic') for f in _OPTIMIZER),

    F('parallelism', 'jit', "'jit' (a mesh over all devices) | 'pmap' (per device: pmean, "
      'synced BN)', choices=('jit', 'pmap'), resume=True),
    F('seed_shards', 0, "num_seeds > 1: devices along a 'seeds' mesh axis (1: members "
      'replicated); 0: auto', '[0, inf)', 'devices along the seeds mesh axis; 0: auto',
      resume=True),
    F('seed_mapping', 'auto', "num_seeds > 1: 'vmap' (one batched program) | 'loop' (one "
      "member after another) | 'auto'", choices=('auto', 'vmap', 'loop'), resume=True),
    F('dtype', 'float32', "computation: 'float32' | 'bfloat16' (parameters stay float32)",
      choices=('float32', 'bfloat16')),
    F('steps_per_call', 0, 'iterations per compiled call (lax.scan; TPU iterations_per_loop); '
      '0: auto', '[0, inf)', 'iterations per compiled call; 0: auto', resume=True),
    F('max_steps_per_call', 25, 'auto: this many, fewer to end at the next '
      'log/sample/eval/checkpoint', '[1, inf)', 'the most iterations per compiled call of auto',
      resume=True),
    F('compilation_cache', '', "compiled-program cache: '' = WORKDIR/compilation_cache on "
      "GPU/TPU, none on CPU; 'none'; or a dir", resume=True),

    F('eval.inception_weights', '', 'FID Inception .npz (python -m '
      'gan_jax.tools.convert_inception)', resume=True),
    F('eval.dinov2_weights', '', 'DINOv2 ViT-L/14 .npz for fd_dinov2 (python -m '
      'gan_jax.tools.convert_dinov2)', resume=True),
    F('eval.classifier', '', 'domain classifier dir (python -m gan_jax.tools.train_classifier)',
      resume=True),
    F('eval.num_samples', 10_000, 'generated samples per evaluation', '[10, inf)',
      "the Inception Score's 10 splits", resume=True),
    F('eval.reference_split', 'train', "real split the statistics come from: 'train' | 'test'",
      resume=True),
    F('eval.reference_samples', 0, 'a seeded random N images of that split (0: all of them)',
      resume=True),
    F('eval.stats_dir', '', "reference statistics cache ('' = the user cache dir)", resume=True),
    F('eval.kid_subsets', 100, 'KID: random subsets ...', '[1, inf)',
      'KID averages over subsets', resume=True),
    F('eval.kid_subset_size', 1000, '... of this many samples each', '[2, inf)',
      "KID's unbiased estimate", resume=True),
    F('eval.pr_samples', 5000, 'precision/recall, density/coverage: samples per side (k-NN, '
      'k = 3; density/coverage: eval.dc_k)', '[4, inf)',
      'precision/recall: k = 3 nearest neighbours and the sample', resume=True),
    F('eval.truncation', 0.0, 'evaluations draw z truncated at this threshold (the truncation '
      "trick: |z_i| <= it, resampled; stylegan2: psi, every w pulled toward w_avg; 0: "
      'untruncated)', '[0, inf)',
      'the truncation threshold; 0: none', resume=True),
    F('eval.truncation_sweep', '', "... and also score these thresholds, a comma list "
      "('0.25,0.5,1.0'; '': none), as truncation_T/METRIC", resume=True),
    F('eval.dc_k', 5, "density/coverage: k of the real samples' k-NN balls (Naeem et al. 2020: "
      '5)', '[1, inf)', 'nearest neighbours', resume=True),
    F('eval.resize', 'legacy', "images to Inception's 299x299: 'legacy' (bilinear, no "
      "antialiasing: pytorch-fid's, most papers') | 'clean' (clean-fid's PIL bicubic, "
      'antialiased)', choices=resize.METHODS, resume=True),
    F('eval.best_metric', '', "keeps WORKDIR/best_checkpoint by this ('': fid, else "
      'fd_dinov2, else domain_fid)', resume=True),
    F('eval_every', 0, 'evaluate every this-many steps (0: off; needs an extractor above)',
      '[0, inf)', '0 turns it off', resume=True),

    F('log_every', 100, 'write scalars every this-many steps (0: off)', '[0, inf)',
      '0 turns it off', resume=True),
    F('checkpoint_every', 1000, 'save every this-many steps, and at the end (0: only at the '
      'end)', '[0, inf)', '0: only at the end', resume=True),
    F('sample_every', 500, 'write a fixed-z sample grid every this-many steps (0: off)',
      '[0, inf)', '0 turns it off', resume=True),
    F('keep_checkpoints', 3, 'checkpoints kept in the workdir', '[1, inf)', 'checkpoints kept',
      resume=True),
    F('skip_nonfinite', False, 'skip (and count) an iteration with a non-finite value, not '
      'stop', resume=True),
    F('num_grid', 64, 'samples in the TensorBoard grid (ACGAN: 10 per class)', '[1, inf)',
      'samples in the grid', resume=True),
    F('grid_members', 'first', "num_seeds > 1: the grid of 'first' (member 0) | 'all' (side "
      'by side)', choices=('first', 'all'), resume=True),
)
BY_NAME: Dict[str, Field] = {f.name: f for f in FIELDS}
assert len(BY_NAME) == len(FIELDS), 'a field declared twice'
OPTIMIZER = {f.name: f.default for f in _OPTIMIZER}  # configs/common.optimizer's defaults


def get(config, name: str):
  node = config
  for part in name.split('.'):
    node = node[part]
  return node


def nested(defaults: Dict[str, Any]) -> Dict[str, Any]:
  """{'a.b': 1, 'c': 2} -> {'a': {'b': 1}, 'c': 2}, in the table's order."""
  out = {}
  for name, value in defaults.items():
    *parents, leaf = name.split('.')
    node = out
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return out


def defaults(**from_args) -> Dict[str, Any]:
  """The table's defaults as a nested dict, FROM_ARGS fields from `from_args` (keyed by their
  names with '.' as '__': gan=..., dataset__name=...)."""
  values = {}
  for f in FIELDS:
    values[f.name] = (from_args[f.name.replace('.', '__')] if f.default is FROM_ARGS
                      else f.default)
  return nested(values)


def allowed_text(f: Field) -> str:
  """What a field allows, in words: '>= 1', '> 0 and <= 1', one of 'a', 'b'."""
  if f.choices:
    return 'one of ' + ', '.join(map(repr, f.choices))
  low, high, low_open, high_open = f.limits
  text = f"{'>' if low_open else '>='} {_number(low)}"
  if high != INF:
    text += f" and {'<' if high_open else '<='} {_number(high)}"
  return text


def _number(x: float):
  return int(x) if float(x).is_integer() else x


def allows(f: Field, value) -> bool:
  if f.choices:
    return value in f.choices
  low, high, low_open, high_open = f.limits
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  return (number and math.isfinite(value) and (value > low if low_open else value >= low) and
          (value < high if high_open else value <= high))


def refusal(config, prefix: str = '', exclude: str = '') -> Optional[str]:
  """The sentence refusing the first value of `config` that its field does not allow (fields
  whose names start with `prefix`, and not with `exclude` when given), or None."""
  for f in FIELDS:
    if not f.name.startswith(prefix) or (exclude and f.name.startswith(exclude)):
      continue
    if not (f.interval or f.choices):
      continue
    value = get(config, f.name)
    if not allows(f, value):
      meaning = f' ({f.bound})' if f.bound else ''
      return f'{f.name} must be {allowed_text(f)}{meaning}, got {value!r}'
  return None


def resumable(name: str) -> bool:
  """Whether a resumed run may change field `name` (any eval.* field, also one not declared
  here)."""
  f = BY_NAME.get(name)
  return f.resume if f else name.startswith('eval.')


def absent_means() -> Dict[str, Any]:
  """What a config.json without a field added since runs began means: that field's default."""
  return {f.name: f.default for f in FIELDS if f.absent_is_default}


def markdown() -> str:
  """docs/config.md: every field, its default, what it allows, whether a resume may change it."""
  lines = ['# Config fields', '',
           'Every field of a config (`configs/*.py` build them; `--config.FIELD=VALUE` sets one on '
           'the command line). Printed from `gan_jax/fields.py` by `python -m gan_jax.fields > '
           'docs/config.md`; a paper preset overrides some defaults (its file says which). '
           '"Resume" marks the fields a resumed run may change.', '',
           '| field | default | allowed | resume | what it is |', '|---|---|---|---|---|']
  for f in FIELDS:
    default = 'from the config argument' if f.default is FROM_ARGS else f'`{f.default!r}`'
    allowed = allowed_text(f) if (f.interval or f.choices) else ''
    doc = f.doc.replace('|', '\\|')
    lines.append(f"| `{f.name}` | {default} | {allowed.replace('|', '/')} | "
                 f"{'yes' if f.resume else ''} | {doc} |")
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  sys.stdout.write(markdown())
