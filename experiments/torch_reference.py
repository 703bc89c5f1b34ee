"""PyTorch eager version of a conv or ResNet config's iteration, for `benchmark.py --torch`.

The same architecture as gan_jax.models.ConvGenerator / ConvCritic (transposed convs with
PyTorch's equivalent of 'SAME' padding, crops to the pyramid sizes, batch norm where the config
says) or ResNetGenerator / ResNetCritic (the WGAN-GP CIFAR-10 ResNet up to 32x32, its 64x64 ResNet
from 64x64), growing with the image size as they do, the same losses (WGAN-GP penalty through
torch.autograd.grad with create_graph=True;
non-saturating for DCGAN) and optimizers. torch is an optional, benchmark-only dependency:
`pip install -r requirements-benchmark.txt` (requirements-reference.txt's CPU torch runs it too).
"""

import time

import torch
from torch import nn

from gan_jax import models


def _norm(kind, channels):
  if kind == 'batch':
    return nn.BatchNorm2d(channels)
  if kind == 'layer':
    return nn.GroupNorm(1, channels)
  return nn.Identity()


class Crop(nn.Module):

  def __init__(self, size):
    super().__init__()
    self.size = size

  def forward(self, x):
    return x[:, :, :self.size, :self.size]


class ResBlock(nn.Module):
  """gan_jax.models.ResBlock: resample None | 'up' | 'down'; `first`: the critic's first block.
  A 'down' block's first conv keeps the input's channels (but the first block's)."""

  def __init__(self, cin, cout, resample, norm, first=False):
    super().__init__()
    self.resample, self.first = resample, first
    self.shortcut = (nn.Conv2d(cin, cout, 1) if resample is not None or cin != cout
                     else nn.Identity())
    mid = cin if resample == 'down' and not first else cout
    self.norm1 = nn.Identity() if first else _norm(norm, cin)
    self.conv1, self.norm2 = nn.Conv2d(cin, mid, 3, padding=1), _norm(norm, mid)
    self.conv2 = nn.Conv2d(mid, cout, 3, padding=1)

  def forward(self, x):
    up = lambda t: nn.functional.interpolate(t, scale_factor=2, mode='nearest')
    pool = lambda t: nn.functional.avg_pool2d(t, 2)
    shortcut = up(x) if self.resample == 'up' else x
    shortcut = self.shortcut(pool(shortcut) if self.first else shortcut)
    if self.resample == 'down' and not self.first:
      shortcut = pool(shortcut)
    h = x if self.first else torch.relu(self.norm1(x))
    h = self.conv1(up(h) if self.resample == 'up' else h)
    h = self.conv2(torch.relu(self.norm2(h)))
    return shortcut + (pool(h) if self.resample == 'down' else h)


def _build_resnet(config, image_shape):
  """The CIFAR-10 ResNet up to 32x32, the 64x64 ResNet (one more block per doubling) above."""
  m, (h, _, c) = config.model, image_shape
  w = m.width
  if h <= 32:
    base, channels = h // 8, [w] * 3
    critic = [ResBlock(c, w, 'down', m.critic_norm, first=True),
              ResBlock(w, w, 'down', m.critic_norm),
              ResBlock(w, w, None, m.critic_norm), ResBlock(w, w, None, m.critic_norm),
              nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 1)]
  else:
    base, channels = 4, models.resnet_channels(h, w)
    down = [w * min(8, 2 ** (i + 1)) for i in range(len(channels))]
    critic = [nn.Conv2d(c, w, 3, padding=1),
              *[ResBlock(cin, cout, 'down', m.critic_norm)
                for cin, cout in zip([w] + down[:-1], down)],
              nn.Flatten(), nn.Linear(4 * 4 * down[-1], 1)]
  gen = nn.Sequential(
      nn.Linear(config.latent_dim, base * base * channels[0]),
      nn.Unflatten(1, (channels[0], base, base)),
      *[ResBlock(cin, cout, 'up', m.gen_norm)
        for cin, cout in zip(channels[:1] + channels[:-1], channels)],
      _norm(m.gen_norm, channels[-1]), nn.ReLU(), nn.Conv2d(channels[-1], c, 3, padding=1),
      nn.Tanh())
  return gen, nn.Sequential(*critic)


def build(config, image_shape):
  """(generator, critic) torch modules mirroring the gan_jax conv or ResNet models."""
  if config.model.arch == 'resnet':
    return _build_resnet(config, image_shape)
  if config.model.arch != 'conv':
    raise ValueError(f'--torch times conv and resnet models, not {config.model.arch!r}')
  m, (h, _, c) = config.model, image_shape
  k = m.kernel_size
  sizes, channels = models.pyramid(h, models.conv_levels(h)), models.conv_channels(h, m.width)
  # PyTorch's output side is 2 (in - 1) - 2p + k + output_padding: exactly 2 * in, like
  # lax's 'SAME', with p = (k - 1) // 2 and output_padding = 2 + 2p - k.
  p = (k - 1) // 2
  up = lambda cin, cout: nn.ConvTranspose2d(cin, cout, k, 2, padding=p, output_padding=2 + 2 * p - k)
  gen = [nn.Linear(config.latent_dim, sizes[0] * sizes[0] * channels[0]),
         nn.Unflatten(1, (channels[0], sizes[0], sizes[0])), _norm(m.gen_norm, channels[0]),
         nn.ReLU()]
  for cin, cout, size in zip(channels, channels[1:], sizes[1:]):
    gen += [up(cin, cout), Crop(size), _norm(m.gen_norm, cout), nn.ReLU()]
  gen += [up(channels[-1], c), Crop(sizes[-1]), nn.Tanh()]
  conv = lambda cin, cout: nn.Conv2d(cin, cout, k, 2, padding=p)
  widths = channels[::-1]
  critic = [conv(c, widths[0]), nn.LeakyReLU(0.2)]
  for cin, cout in zip(widths, widths[1:]):
    critic += [conv(cin, cout), _norm(m.critic_norm, cout), nn.LeakyReLU(0.2)]
  critic = nn.Sequential(*critic, nn.Flatten(), nn.LazyLinear(1))
  critic(torch.zeros(2, c, h, h))  # materialise the lazy layer
  return nn.Sequential(*gen), critic


def _optimizer(params, o):
  if o.name == 'adam':
    return torch.optim.Adam(params, lr=o.learning_rate, betas=(o.b1, o.b2))
  return torch.optim.RMSprop(params, lr=o.learning_rate, alpha=o.decay)


def benchmark(config, image_shape, steps: int, device: str = 'cpu',
              compiled: bool = False, autocast: bool = False) -> dict:
  """Seconds per iteration (n_critic critic updates + one G update) in PyTorch on `device`,
  eager or with the generator and critic under torch.compile (`compiled`); with `autocast`,
  each iteration under torch.autocast(bfloat16): convolutions and products in bfloat16 (on a
  CPU, oneDNN's: AMX where there is one), parameters and optimizers in float32."""
  torch.manual_seed(0)
  gen, critic = build(config, image_shape)
  gen, critic = gen.to(device), critic.to(device)
  g_opt = _optimizer(gen.parameters(), config.gen_optimizer)
  c_opt = _optimizer(critic.parameters(), config.critic_optimizer)
  if compiled:
    gen, critic = torch.compile(gen), torch.compile(critic)
  b, n = config.batch_size, config.n_critic
  real_all = torch.rand(n, b, image_shape[2], image_shape[0], image_shape[1],
                        device=device) * 2 - 1
  wasserstein = config.gan in ('wgan', 'wgan_gp')
  softplus = nn.functional.softplus

  def iteration():
    if autocast:
      with torch.autocast(device.split(':')[0], dtype=torch.bfloat16):
        return step()
    return step()

  def step():
    for i in range(n):
      real = real_all[i]
      with torch.no_grad():
        fake = gen(torch.randn(b, config.latent_dim, device=device))
      d_real, d_fake = critic(real), critic(fake)
      if wasserstein:
        loss = d_fake.mean() - d_real.mean()
      else:
        loss = softplus(-d_real).mean() + softplus(d_fake).mean()
      if config.gan == 'wgan_gp':
        eps = torch.rand(b, 1, 1, 1, device=device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        loss = loss + config.loss.gp_weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
      c_opt.zero_grad()
      loss.backward()
      c_opt.step()
      if config.gan == 'wgan':
        with torch.no_grad():
          for p in critic.parameters():
            p.clamp_(-config.loss.clip_value, config.loss.clip_value)
    d_fake = critic(gen(torch.randn(b, config.latent_dim, device=device)))
    g_loss = -d_fake.mean() if wasserstein else softplus(-d_fake).mean()
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()

  sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)
  t0 = time.perf_counter()
  iteration()  # warm-up (and torch.compile's compilation)
  sync()
  warmup = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps):
    iteration()
  sync()
  seconds = (time.perf_counter() - t0) / steps
  return {'torch_version': torch.__version__, 'torch_threads': torch.get_num_threads(),
          'torch_device': device, 'torch_compiled': compiled, 'torch_autocast': autocast,
          'torch_warmup_s': round(warmup, 2), 'torch_seconds_per_iter': round(seconds, 5),
          'torch_images_per_s': round(n * b / seconds, 1)}
