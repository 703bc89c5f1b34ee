"""A GAN is a point of a grid: adversarial loss x Lipschitz device x conditioning.

  loss.adversarial   'nonsaturating' (DCGAN's -log D(G(z))) | 'wasserstein' | 'hinge'
                     (SNGAN's) | 'least_squares' (LSGAN's, 0-1 coding)
  loss.lipschitz     'none' | 'clip' (WGAN's weight clipping) | 'gp' (WGAN-GP's gradient penalty)
                     | 'r1' (Mescheder et al.'s penalty on real data)
  model.conditional  'none' | 'acgan' (label-conditioned G, auxiliary class head on D) |
                     'projection' (conditional batch norm in G, projection discriminator)

Spectral normalisation (model.spectral_norm), the generator's EMA (ema.decay) and DiffAugment
(augment.policy) are options of any point of the grid, not points of it.

`config.gan` names a paper preset that sets all three (PRESETS); a field that is not '' overrides
its preset, so any combination trains (`--config.loss.lipschitz=gp` on DCGAN). The trainer reads
only the resolved `GanSpec`: a new GAN is an entry here plus its losses, never a second trainer.
"""

import dataclasses

from gan_jax.errors import ConfigError

ADVERSARIAL = ('nonsaturating', 'wasserstein', 'hinge', 'least_squares')  # losses.ADVERSARIAL
LIPSCHITZ = ('none', 'clip', 'gp', 'r1')
CONDITIONAL = ('none', 'acgan', 'projection')


@dataclasses.dataclass(frozen=True)
class GanSpec:
  adversarial: str
  lipschitz: str
  conditional: str

  @property
  def gradient_penalty(self) -> bool:
    return self.lipschitz == 'gp'

  @property
  def weight_clipping(self) -> bool:
    return self.lipschitz == 'clip'

  @property
  def r1(self) -> bool:
    return self.lipschitz == 'r1'

  @property
  def is_conditional(self) -> bool:
    return self.conditional != 'none'

  @property
  def class_head(self) -> bool:
    """ACGAN's auxiliary classifier on the critic (and its class losses)."""
    return self.conditional == 'acgan'

  @property
  def projection(self) -> bool:
    """The critic sees the labels (projection discriminator)."""
    return self.conditional == 'projection'


PRESETS = {
    'wgan': GanSpec('wasserstein', 'clip', 'none'),
    'wgan_gp': GanSpec('wasserstein', 'gp', 'none'),
    'dcgan': GanSpec('nonsaturating', 'none', 'none'),
    'acgan': GanSpec('nonsaturating', 'none', 'acgan'),
    'sngan': GanSpec('hinge', 'none', 'none'),   # with model.spectral_norm (configs/sngan.py)
    'biggan': GanSpec('hinge', 'none', 'projection'),  # model.arch 'biggan' (configs/biggan.py)
    # model.arch 'stylegan2', lazy R1 (configs/stylegan2.py; conditional: 'projection')
    'stylegan2': GanSpec('nonsaturating', 'r1', 'none'),
}

# The field ACGAN configs had before the grid (`acgan_adversarial`): when set, it decides the
# loss of an ACGAN (old config.json files, `--config.acgan_adversarial=...`).
ACGAN_ADVERSARIAL = {
    'nonsaturating': ('nonsaturating', 'none'),
    'wasserstein_clip': ('wasserstein', 'clip'),
    'wasserstein_gp': ('wasserstein', 'gp'),
}


def resolve_fields(gan: str, adversarial: str = '', lipschitz: str = '', conditional: str = '',
                   acgan_adversarial: str = '') -> GanSpec:
  """The GanSpec of a preset name and its override fields ('' = the preset's); ConfigError
  names the field, the value and the choices."""
  if gan not in PRESETS:
    raise ConfigError(f'unknown gan {gan!r}: not a preset; choose one of {", ".join(PRESETS)}')
  preset = PRESETS[gan]
  if gan == 'acgan' and acgan_adversarial:
    if acgan_adversarial not in ACGAN_ADVERSARIAL:
      raise ConfigError(f'acgan_adversarial {acgan_adversarial!r} is unknown; choose one of '
                        f'{", ".join(ACGAN_ADVERSARIAL)} (or set loss.adversarial and '
                        f'loss.lipschitz)')
    # The older field decides ACGAN's loss when set (whatever the config file's option wrote
    # into loss.*), so that a config.json that has it trains the loss it names.
    adversarial, lipschitz = ACGAN_ADVERSARIAL[acgan_adversarial]
  spec = GanSpec(adversarial or preset.adversarial, lipschitz or preset.lipschitz,
                 conditional or preset.conditional)
  for field, value, choices in (('loss.adversarial', spec.adversarial, ADVERSARIAL),
                                ('loss.lipschitz', spec.lipschitz, LIPSCHITZ),
                                ('model.conditional', spec.conditional, CONDITIONAL)):
    if value not in choices:
      raise ConfigError(f'{field} {value!r} is unknown; choose one of '
                        f'{", ".join(map(repr, choices))} (or \'\' for the preset\'s)')
  return spec


def resolve(config) -> GanSpec:
  """The GanSpec of a config (its preset `gan` and the grid fields)."""
  return resolve_fields(config.gan, config.loss.adversarial, config.loss.lipschitz,
                        config.model.conditional, config.acgan_adversarial)


def n_critic_at(step: int, config) -> int:
  """Critic updates before generator update `step` (0-based).

  WGAN's schedule: `critic_boost.iters` (100) updates for the first `critic_boost.first_steps`
  (25) generator updates and every `critic_boost.every`-th (500) one; `n_critic` otherwise.
  """
  boost = config.critic_boost
  if boost.iters > 0 and (step < boost.first_steps or
                          (boost.every > 0 and step % boost.every == 0)):
    return boost.iters
  return config.n_critic
