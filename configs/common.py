"""Shared config defaults and the `dataset[,option,...]` argument every config file takes."""

import ml_collections

from gan_jax import input_pipeline  # DATASETS: name -> image shape, classes, loader


def optimizer(name='adam', learning_rate=1e-4, b1=0.0, b2=0.9, decay=0.99, schedule='constant'):
  return ml_collections.ConfigDict(dict(
      name=name,                    # 'adam' | 'rmsprop'
      learning_rate=learning_rate,  # learning rate at step 0
      schedule=schedule,            # 'constant' | 'linear' (to 0 at num_steps, per G step)
      b1=b1,                        # Adam beta1
      b2=b2,                        # Adam beta2
      decay=decay,                  # RMSprop decay (PyTorch's alpha)
  ))


def parse_arg(arg: str, known_options):
  """'cifar10,runlocal' -> ('cifar10', {'runlocal'}); the name is a DATASETS key or 'tfds:NAME'
  (any TFDS image dataset); unknown names fail with the nearest names and the choices."""
  name, *options = [a.strip() for a in (arg or 'mnist').split(',') if a.strip()]
  if not input_pipeline.is_named(name):
    raise ValueError(input_pipeline.unknown_dataset(name))
  options = set(options)
  unknown = options - set(known_options) - {'runlocal'}
  if unknown:
    raise ValueError(f'unknown option(s) {", ".join(sorted(unknown))}; choose from '
                     f'{", ".join(sorted(set(known_options) | {"runlocal"}))}')
  return name, options


SIZE_OPTIONS = {'size64': 64, 'size128': 128}  # option -> dataset.image_size


def image_size_option(c: ml_collections.ConfigDict, options) -> int:
  """Sets dataset.image_size from a `size64` / `size128` option; returns it (0: no option).
  Named datasets and folders are resized to it; IDX and .npz files keep their own size."""
  sizes = [SIZE_OPTIONS[o] for o in sorted(options & set(SIZE_OPTIONS))]
  if not sizes:
    return 0
  if len(sizes) > 1:
    raise ValueError(f'choose one image size, got {", ".join(sorted(options & set(SIZE_OPTIONS)))}')
  c.dataset.image_size = sizes[0]
  return sizes[0]


def base_config(gan: str, dataset: str) -> ml_collections.ConfigDict:
  """Fields every GAN has; variant files override what their paper sets."""
  c = ml_collections.ConfigDict()
  c.gan = gan                  # paper preset: 'wgan' | 'wgan_gp' | 'dcgan' | 'acgan' | 'sngan' (gan_jax/gans.py)
  c.acgan_adversarial = ''     # old ACGAN field, still read: 'nonsaturating' | 'wasserstein_clip' | 'wasserstein_gp'
  c.seed = 0                   # PRNG seed: parameters, noise and data order
  c.num_seeds = 1              # train seeds seed, seed + 1, ... at once, as one stacked state (1: one run)
  c.batch_size = 64            # global batch size (split over all devices)
  c.num_steps = 100_000        # generator updates
  c.n_critic = 5               # critic updates per generator update
  c.critic_boost = ml_collections.ConfigDict(dict(
      iters=0,                 # WGAN schedule: critic updates on boosted steps (0: off)
      first_steps=0,           # boost the first this-many generator updates
      every=0,                 # ... and every this-many-th one (0: never)
  ))
  c.latent_dim = 128           # size of z

  size, _, channels = input_pipeline.default_shape(dataset)
  c.dataset = ml_collections.ConfigDict(dict(
      name=dataset,            # a name in input_pipeline.DATASETS ('mnist', 'celeb_a', ...) or 'tfds:NAME'
      path='',                 # IDX directory, .npz or folder of images (local or gs://); when set, no TFDS
      data_dir='',             # prepared TFDS directory (e.g. a bucket); '' = TFDS default
      download=True,           # TFDS: download and prepare when data_dir lacks the dataset
      split='train',           # 'train' | 'test' (TFDS split strings work for TFDS)
      subset=1.0,              # train on this fraction of the split: one fixed random subset, whatever the seed (1: all)
      float_range='unit',      # float image data (.npz): 'unit' in [0, 1] | 'signed' in [-1, 1]
      image_size=size,         # TFDS, folders, digits: the side images are cropped and resized to (not IDX/.npz)
      storage='auto',          # folders, TFDS: 'memory' (decoded once) | 'stream' (decoded per batch) | 'auto'
      channels=channels,       # TFDS, folders, digits: 1 (grayscale) | 3 (RGB) (not IDX/.npz)
      image_key='',            # TFDS: the image feature; '' = 'image' or the only Image feature
      label_key='',            # TFDS: the ClassLabel feature; '' = 'label' if there is one; 'none'
  ))

  c.model = ml_collections.ConfigDict(dict(
      arch='conv',             # 'conv' | 'resnet' | 'mlp'
      width=64,                # conv: channels of the finest layer (DIM); mlp: hidden units
      critic_width=0,          # the critic's width, if not model.width (0)
      critic_pool='mean',      # resnet up to 32x32: the critic's global pool, 'mean' | 'sum' (SNGAN)
      depth=3,                 # mlp: hidden layers
      kernel_size=5,           # conv: kernel side
      gen_norm='none',         # generator normalisation: 'batch' | 'layer' | 'none'
      critic_norm='none',      # critic normalisation: 'batch' | 'layer' | 'none'
      init_std=0.0,            # N(0, init_std) kernel init; 0 = Flax default
      conv_impl='auto',        # conv layers: 'hybrid' | 'fast' | 'xla' | 'auto' (CPU: hybrid)
      conditional='',          # 'none' | 'acgan' (label-conditioned G, class head on D) | 'projection'; '' = gan's
      spectral_norm=False,     # spectral normalisation of the critic's weights (one power iteration per update)
      gen_spectral_norm=False, # ... and of the generator's
  ))

  c.loss = ml_collections.ConfigDict(dict(
      adversarial='',          # 'nonsaturating' | 'wasserstein' | 'hinge' | 'least_squares'; '' = the preset's (config.gan)
      lipschitz='',            # 'none' | 'clip' (weight clipping) | 'gp' (gradient penalty) | 'r1'; '' = gan's
      gp_weight=10.0,          # lambda of the gradient penalty (lipschitz 'gp')
      clip_value=0.01,         # c of the weight clipping (lipschitz 'clip')
      aux_weight=1.0,          # weight of the ACGAN auxiliary class cross-entropy
      r1_weight=10.0,          # gamma of R1 (lipschitz 'r1'): the loss adds gamma / 2 E|grad D(x_real)|^2
      r1_every=1,              # R1 on every this-many-th critic update only, times this (lazy regularisation)
  ))
  c.ema = ml_collections.ConfigDict(dict(
      decay=0.0,               # the generator's exponential moving average, e.g. 0.999 (0: off); samples use it
      start_step=0,            # generator updates before the average starts (a copy until then)
  ))
  c.augment = ml_collections.ConfigDict(dict(
      policy='',               # DiffAugment: a comma list of 'color', 'translation', 'cutout' ('': none)
  ))
  c.gen_optimizer = optimizer()
  c.critic_optimizer = optimizer()

  c.parallelism = 'jit'         # 'jit' (a mesh over all devices) | 'pmap' (pmean, synced BN)
  c.seed_shards = 0            # num_seeds > 1: devices along a 'seeds' mesh axis (1: members replicated); 0: auto
  c.seed_mapping = 'auto'      # num_seeds > 1: 'vmap' (one batched program) | 'loop' (one member after another) | 'auto'
  c.dtype = 'float32'          # computation: 'float32' | 'bfloat16' (parameters stay float32)
  c.steps_per_call = 0         # iterations per compiled call (lax.scan; TPU iterations_per_loop); 0: auto
  c.max_steps_per_call = 25    # auto: this many, fewer to end at the next log/sample/eval/checkpoint
  c.compilation_cache = ''     # compiled-program cache: '' = WORKDIR/compilation_cache on GPU/TPU, none on CPU; 'none'; or a dir

  c.eval = ml_collections.ConfigDict(dict(
      inception_weights='',    # FID Inception .npz (python -m gan_jax.tools.convert_inception)
      classifier='',           # domain classifier dir (python -m gan_jax.tools.train_classifier)
      num_samples=10_000,      # generated samples per evaluation
      reference_split='train', # real split the statistics come from: 'train' | 'test'
      reference_samples=0,     # a seeded random N images of that split (0: all of them)
      stats_dir='',            # reference statistics cache ('' = the user cache dir)
      kid_subsets=100,         # KID: random subsets ...
      kid_subset_size=1000,    # ... of this many samples each
      pr_samples=5000,         # precision/recall: samples per side (k-NN, k = 3)
      best_metric='',          # keeps WORKDIR/best_checkpoint by this ('': fid, else domain_fid)
  ))
  c.eval_every = 0             # evaluate every this-many steps (0: off; needs an extractor above)

  c.log_every = 100            # write scalars every this-many steps (0: off)
  c.checkpoint_every = 1000    # save every this-many steps, and at the end (0: only at the end)
  c.sample_every = 500         # write a fixed-z sample grid every this-many steps (0: off)
  c.keep_checkpoints = 3       # checkpoints kept in the workdir
  c.skip_nonfinite = False     # skip (and count) an iteration with a non-finite value, not stop
  c.num_grid = 64              # samples in the TensorBoard grid (ACGAN: 10 per class)
  c.grid_members = 'first'     # num_seeds > 1: the grid of 'first' (member 0) | 'all' (side by side)
  return c


def runlocal(c: ml_collections.ConfigDict) -> None:
  """Shrinks a config to seconds on a laptop CPU (what the tests use)."""
  c.batch_size = 16
  c.num_steps = 4
  c.model.width = 8
  c.latent_dim = 16
  c.log_every = 2
  c.checkpoint_every = 2
  c.sample_every = 2
  c.num_grid = 16
  if c.ema.start_step:
    c.ema.start_step = 1
  if c.critic_boost.iters:
    c.critic_boost.iters = 10
    c.critic_boost.first_steps = 1
    c.critic_boost.every = 3
