"""A PyTorch BigGAN written as BigGAN-PyTorch (github.com/ajbrock/BigGAN-PyTorch, BigGAN.py and
layers.py) computes it, to check gan_jax/models/biggan.py against (tests/test_biggan_torch.py):

  * SN layers (`SN`): u [1, out] kept as a buffer; in training mode each forward takes one power
    iteration v = normalize(u W), u = normalize(v W^T) and keeps u; sigma = v W^T u^T from the
    u before it (in eval mode the same from the kept u, not kept); W / sigma. An embedding's u
    spans its classes (BigGAN-PyTorch's SNEmbedding).
  * `CCBN`: F.batch_norm (torch's running statistics, momentum 0.1, eps 1e-5) without an affine
    part, times 1 + gain(c) plus bias(c), gain and bias bias-free SN linears of c.
  * `GBlock`: BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 plus conv1x1(upsample(x)).
  * `DBlock`: wide (conv1 gives the output channels); preactivation (ReLU first, 1x1 shortcut
    then pool) but in the first block (pool, then the 1x1 shortcut).
  * `Attention`: theta, phi (max-pooled), g (max-pooled), o; x + gamma * o.
  * `Generator` / `Discriminator`: G_arch / D_arch, hierarchical z with the shared embedding
    [y, z chunk], attention after the blocks whose output side is `attention` (for D at 32 px
    BigGAN-PyTorch's table lists every block as 16x16; here, as in gan_jax and StudioGAN, the
    side a block really outputs), D's sum pool, linear plus projection.
  * `ortho`: BigGAN-PyTorch's utils.ortho, the orthogonal regularisation's gradient added to
    .grad (2 beta (W W^T * (1 - I)) W) for every parameter with 2+ axes but the blacklist.

`load_flax(module, params, stats, vectors)` copies gan_jax's parameters, batch statistics and
spectral-norm vectors (estimate 'uv') into these modules; `flax_grads(module, flax_params)` reads
their .grad back in gan_jax's layout. `python tests/biggan_torch.py` prints parameter counts.
"""

import functools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

G_ARCH = {32: ([4, 4, 4], [4, 4, 4]),
          64: ([16, 16, 8, 4], [16, 8, 4, 2]),
          128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
          256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1])}
D_ARCH = {32: ([4, 4, 4, 4], [True, True, False, False]),
          64: ([1, 2, 4, 8, 16], [True] * 4 + [False]),
          128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
          256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False])}


class SN:
  """BigGAN-PyTorch's layers.SN with one singular value and one iteration per forward."""

  def _init_sn(self, num_outputs, eps=1e-12):
    self.eps = eps
    self.register_buffer('u0', torch.randn(1, num_outputs))
    self.register_buffer('sv0', torch.ones(1))

  def W_(self):
    w_mat = self.weight.view(self.weight.size(0), -1)
    with torch.no_grad():
      v = F.normalize(torch.matmul(self.u0, w_mat), eps=self.eps)
      u = F.normalize(torch.matmul(v, w_mat.t()), eps=self.eps)
      if self.training:
        self.u0[:] = u
    sv = torch.squeeze(torch.matmul(torch.matmul(v, w_mat.t()), u.t()))
    if self.training:
      with torch.no_grad():
        self.sv0[:] = sv
    return self.weight / sv


class SNConv2d(nn.Conv2d, SN):

  def __init__(self, cin, cout, kernel_size=3, padding=1, bias=True):
    nn.Conv2d.__init__(self, cin, cout, kernel_size, padding=padding, bias=bias)
    self._init_sn(cout)

  def forward(self, x):
    return F.conv2d(x, self.W_(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, SN):

  def __init__(self, cin, cout, bias=True):
    nn.Linear.__init__(self, cin, cout, bias)
    self._init_sn(cout)

  def forward(self, x):
    return F.linear(x, self.W_(), self.bias)


class SNEmbedding(nn.Embedding, SN):

  def __init__(self, num, dim):
    nn.Embedding.__init__(self, num, dim)
    self._init_sn(num)

  def forward(self, x):
    return F.embedding(x, self.W_())


class BN(nn.Module):
  """layers.bn: F.batch_norm with a gain and bias of its own."""

  def __init__(self, c, eps=1e-5, momentum=0.1):
    super().__init__()
    self.gain, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
    self.register_buffer('stored_mean', torch.zeros(c))
    self.register_buffer('stored_var', torch.ones(c))
    self.eps, self.momentum = eps, momentum

  def forward(self, x, y=None):
    return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias,
                        self.training, self.momentum, self.eps)


class CCBN(nn.Module):
  """layers.ccbn (norm_style 'bn') with SN linears of c = [y, z chunk]."""

  def __init__(self, c, cond_dim, eps=1e-5, momentum=0.1):
    super().__init__()
    self.gain = SNLinear(cond_dim, c, bias=False)
    self.bias = SNLinear(cond_dim, c, bias=False)
    self.register_buffer('stored_mean', torch.zeros(c))
    self.register_buffer('stored_var', torch.ones(c))
    self.eps, self.momentum = eps, momentum

  def forward(self, x, y):
    gain = (1 + self.gain(y)).view(y.size(0), -1, 1, 1)
    bias = self.bias(y).view(y.size(0), -1, 1, 1)
    out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, self.training,
                       self.momentum, self.eps)
    return out * gain + bias


def _up(x):
  return F.interpolate(x, scale_factor=2)


class GBlock(nn.Module):

  def __init__(self, cin, cout, cond_dim):
    super().__init__()
    self.conv1, self.conv2 = SNConv2d(cin, cout), SNConv2d(cout, cout)
    self.conv_sc = SNConv2d(cin, cout, kernel_size=1, padding=0)
    self.bn1, self.bn2 = CCBN(cin, cond_dim), CCBN(cout, cond_dim)

  def forward(self, x, y):
    h = _up(F.relu(self.bn1(x, y)))
    h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
    return h + self.conv_sc(_up(x))


class DBlock(nn.Module):

  def __init__(self, cin, cout, preactivation, downsample):
    super().__init__()
    self.conv1, self.conv2 = SNConv2d(cin, cout), SNConv2d(cout, cout)
    self.learnable_sc = cin != cout or downsample
    if self.learnable_sc:
      self.conv_sc = SNConv2d(cin, cout, kernel_size=1, padding=0)
    self.preactivation, self.downsample = preactivation, downsample

  def shortcut(self, x):
    pool = (lambda t: F.avg_pool2d(t, 2)) if self.downsample else (lambda t: t)
    conv = self.conv_sc if self.learnable_sc else (lambda t: t)
    return pool(conv(x)) if self.preactivation else conv(pool(x))

  def forward(self, x):
    h = F.relu(x) if self.preactivation else x
    h = self.conv2(F.relu(self.conv1(h)))
    if self.downsample:
      h = F.avg_pool2d(h, 2)
    return h + self.shortcut(x)


class Attention(nn.Module):

  def __init__(self, ch):
    super().__init__()
    self.ch = ch
    conv = functools.partial(SNConv2d, kernel_size=1, padding=0, bias=False)
    self.theta, self.phi = conv(ch, ch // 8), conv(ch, ch // 8)
    self.g, self.o = conv(ch, ch // 2), conv(ch // 2, ch)
    self.gamma = nn.Parameter(torch.tensor(0.))

  def forward(self, x, y=None):
    n = x.shape[2] * x.shape[3]
    theta = self.theta(x).view(-1, self.ch // 8, n)
    phi = F.max_pool2d(self.phi(x), [2, 2]).view(-1, self.ch // 8, n // 4)
    g = F.max_pool2d(self.g(x), [2, 2]).view(-1, self.ch // 2, n // 4)
    beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
    o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(-1, self.ch // 2, x.shape[2],
                                                         x.shape[3]))
    return self.gamma * o + x


class Generator(nn.Module):
  """BigGAN.Generator with G_shared, hier and G_param 'SN'; `channels` of the output image."""

  def __init__(self, ch, resolution, n_classes, dim_z, shared_dim=128, attention=64,
               channels=3):
    super().__init__()
    ins, outs = [[ch * c for c in cs] for cs in G_ARCH[resolution]]
    self.num_slots = len(ins) + 1
    self.z_chunk = dim_z // self.num_slots
    self.shared = nn.Embedding(n_classes, shared_dim)   # no SN, as in BigGAN-PyTorch
    self.linear = SNLinear(self.z_chunk, ins[0] * 16)
    self.blocks = nn.ModuleList()
    for i, (cin, cout) in enumerate(zip(ins, outs)):
      block = [GBlock(cin, cout, shared_dim + self.z_chunk)]
      if 4 * 2 ** (i + 1) == attention:
        block.append(Attention(cout))
      self.blocks.append(nn.ModuleList(block))
    self.output_layer = nn.Sequential(BN(outs[-1]), nn.ReLU(), SNConv2d(outs[-1], channels))

  def forward(self, z, labels):
    y = self.shared(labels)
    zs = torch.split(z, self.z_chunk, 1)
    ys = [torch.cat([y, item], 1) for item in zs[1:]]
    h = self.linear(zs[0]).view(z.size(0), -1, 4, 4)
    for index, blocklist in enumerate(self.blocks):
      for block in blocklist:
        h = block(h, ys[index])
    return torch.tanh(self.output_layer(h))


class Discriminator(nn.Module):
  """BigGAN.Discriminator (D_wide, D_param 'SN'); `channels` of the input image."""

  def __init__(self, ch, resolution, n_classes, attention=64, channels=3):
    super().__init__()
    outs, down = D_ARCH[resolution]
    outs = [ch * c for c in outs]
    self.blocks = nn.ModuleList()
    side = resolution
    for i, (cin, cout, d) in enumerate(zip([channels] + outs[:-1], outs, down)):
      side //= 2 if d else 1
      block = [DBlock(cin, cout, preactivation=i > 0, downsample=d)]
      if side == attention:
        block.append(Attention(cout))
      self.blocks.append(nn.ModuleList(block))
    self.linear = SNLinear(outs[-1], 1)
    self.embed = SNEmbedding(n_classes, outs[-1])

  def forward(self, x, y):
    h = x
    for blocklist in self.blocks:
      for block in blocklist:
        h = block(h)
    h = torch.sum(F.relu(h), [2, 3])
    return self.linear(h) + torch.sum(self.embed(y) * h, 1, keepdim=True)


def ortho(model, strength, blacklist=()):
  """BigGAN-PyTorch's utils.ortho: adds the orthogonal regularisation's gradient to .grad."""
  with torch.no_grad():
    for param in model.parameters():
      if len(param.shape) < 2 or any(param is item for item in blacklist):
        continue
      w = param.view(param.shape[0], -1)
      grad = 2 * torch.mm(torch.mm(w, w.t()) * (1. - torch.eye(w.shape[0])), w)
      param.grad.data += strength * grad.view(param.shape)


def parameter_count(module) -> int:
  return sum(p.numel() for p in module.parameters())


# --- gan_jax -> these modules ---------------------------------------------------------------

def _flat(tree, prefix=()):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, 'items'):
      out.update(_flat(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _pairs(module):
  """[(torch module, its gan_jax path, kind)]: kind 'linear' (Dense), 'first' (G's linear to
  the 4x4 map: NCHW in torch, NHWC in gan_jax), 'conv', 'embed', 'bn', 'ccbn', 'attention'."""
  if isinstance(module, Generator):
    pairs = [(module.shared, ('shared_embed',), 'embed'), (module.linear, ('Dense_0',), 'first')]
    attention = 0
    for i, blocklist in enumerate(module.blocks):
      block, rest = blocklist[0], blocklist[1:]
      pairs += block_pairs(block, (f'ResBlock_{i}',), True)
      for layer in rest:
        pairs += attention_pairs(layer, (f'SelfAttention_{attention}',))
        attention += 1
    pairs += [(module.output_layer[0], ('BatchNorm_0',), 'bn'),
              (module.output_layer[2], ('Conv_0',), 'conv')]
    return pairs
  pairs, attention = [], 0
  for i, blocklist in enumerate(module.blocks):
    pairs += block_pairs(blocklist[0], (f'ResBlock_{i}',), False)
    for layer in blocklist[1:]:
      pairs += attention_pairs(layer, (f'SelfAttention_{attention}',))
      attention += 1
  return pairs + [(module.linear, ('adv_head',), 'linear'),
                  (module.embed, ('projection_embed',), 'embed')]


def block_pairs(block, path=(), generator=True):
  # resnet.ResBlock makes the 1x1 shortcut (if any) first, then the two 3x3 convs
  shortcut = generator or block.learnable_sc
  convs = ([block.conv_sc] if shortcut else []) + [block.conv1, block.conv2]
  pairs = [(conv, path + (f'Conv_{i}',), 'conv') for i, conv in enumerate(convs)]
  if generator:
    for i, bn in enumerate((block.bn1, block.bn2)):
      cbn = path + (f'ConditionalBatchNorm_{i}',)
      pairs += [(bn, cbn + ('BatchNorm_0',), 'stats'),
                (bn.gain, cbn + ('scale_linear',), 'linear'),
                (bn.bias, cbn + ('bias_linear',), 'linear')]
  return pairs


def attention_pairs(layer, path=()):
  return [(layer, path, 'gamma')] + [(getattr(layer, name), path + (name,), 'conv')
                                     for name in ('theta', 'phi', 'g', 'o')]


def _first_order(n_out):
  """Torch's rows (c, h, w) of G's first linear as gan_jax's columns (h, w, c)."""
  c = n_out // 16
  return np.arange(n_out).reshape(4, 4, c).transpose(2, 0, 1).reshape(-1)


def _weight(kind, value):
  """A gan_jax parameter as the torch weight of its kind."""
  value = np.asarray(value)
  if kind == 'conv':
    return value.transpose(3, 2, 0, 1)
  if kind == 'first':
    return value[:, _first_order(value.shape[1])].T
  if kind == 'linear':
    return value.T
  return value


def _from_weight(kind, value):
  """The inverse of `_weight` (for gradients)."""
  if kind == 'conv':
    return value.transpose(2, 3, 1, 0)
  if kind == 'first':
    out = np.empty_like(value.T)
    out[:, _first_order(value.shape[0])] = value.T
    return out
  if kind == 'linear':
    return value.T
  return value


def _leaf(kind):
  return {'conv': 'kernel', 'first': 'kernel', 'linear': 'kernel', 'embed': 'embedding'}[kind]


def load_flax(module, params, stats, vectors, pairs=None):
  """Copies gan_jax's parameters, batch statistics and spectral vectors ('uv') into `module`
  (a Generator or Discriminator; another module with its `pairs`: block_pairs, ...)."""
  params, stats = _flat(params), _flat(stats)
  t = lambda a: torch.from_numpy(np.array(a, np.float32))
  with torch.no_grad():
    for layer, path, kind in pairs or _pairs(module):
      if kind in ('bn', 'stats'):
        if kind == 'bn':
          layer.gain[:], layer.bias[:] = t(params[path + ('scale',)]), t(params[path + ('bias',)])
        layer.stored_mean[:] = t(stats[path + ('mean',)])
        layer.stored_var[:] = t(stats[path + ('var',)])
        continue
      if kind == 'gamma':
        layer.gamma.fill_(float(params[path + ('gamma',)]))
        continue
      leaf = path + (_leaf(kind),)
      layer.weight[:] = t(_weight(kind, params[leaf]))
      if layer._parameters.get('bias') is not None:  # pylint: disable=protected-access
        bias = np.asarray(params[path + ('bias',)])
        layer.bias[:] = t(bias[_first_order(len(bias))] if kind == 'first' else bias)
      if isinstance(layer, SN):
        u = np.asarray(vectors['/'.join(leaf)])
        layer.u0[:] = t(u[_first_order(u.shape[0])] if kind == 'first' else u)[None]


def flax_u(module, pairs=None):
  """The SN layers' u as gan_jax's spectral vectors (path -> u)."""
  out = {}
  for layer, path, kind in pairs or _pairs(module):
    if isinstance(layer, SN):
      u = layer.u0[0].detach().numpy()
      if kind == 'first':
        back = np.empty_like(u)
        back[_first_order(u.shape[0])] = u
        u = back
      out['/'.join(path + (_leaf(kind),))] = u
  return out


def flax_grads(module, pairs=None):
  """The .grad of `module`'s weights and biases in gan_jax's layout ({path tuple: array})."""
  out = {}
  for layer, path, kind in pairs or _pairs(module):
    if kind in ('bn', 'stats'):
      continue
    if kind == 'gamma':
      out[path + ('gamma',)] = layer.gamma.grad.numpy()
      continue
    out[path + (_leaf(kind),)] = _from_weight(kind, layer.weight.grad.numpy())
    bias = layer._parameters.get('bias')  # pylint: disable=protected-access
    if bias is not None:
      grad = bias.grad.numpy()
      if kind == 'first':
        back = np.empty_like(grad)
        back[_first_order(grad.shape[0])] = grad
        grad = back
      out[path + ('bias',)] = grad
  return out


if __name__ == '__main__':
  with torch.device('meta'):
    for res, ch, d_ch, dim_z, attention in ((128, 96, 96, 120, 64), (64, 96, 96, 120, 64),
                                             (32, 96, 48, 80, 16)):
      classes = 10 if res == 32 else 1000
      print(f'{res} px, G ch {ch}, D ch {d_ch}: G',
            parameter_count(Generator(ch, res, classes, dim_z, attention=attention)), 'D',
            parameter_count(Discriminator(d_ch, res, classes, attention=attention)))
