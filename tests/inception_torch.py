"""A PyTorch FID Inception written as pytorch-fid 0.3.0 computes it (github.com/mseitzer/pytorch-fid,
src/pytorch_fid/inception.py: `InceptionV3([3])` over `fid_inception_v3()`, whose layers are
torchvision's Inception3 with the FID blocks patched in), in plain torch (no torchvision, no
pytorch-fid), to check gan_jax/inception.py against (tests/test_inception_torch.py):

  * `BasicConv2d`: conv without bias -> BatchNorm2d(eps=0.001; running statistics in eval mode)
    -> ReLU (torchvision's).
  * the stem: Conv2d_1a_3x3 (stride 2), 2a, 2b (pad 1), max pool 3x3 stride 2, 3b 1x1, 4a 3x3,
    max pool 3x3 stride 2 (pytorch-fid's blocks 0 and 1).
  * Mixed_5b..5d (`InceptionA`, FIDInceptionA), Mixed_6b..6e (`InceptionC`, FIDInceptionC),
    Mixed_7b (`InceptionE`, FIDInceptionE_1): the branch pool is a 3x3 stride-1 average whose
    mean leaves the zero padding out (`count_include_pad=False`, TensorFlow's), where
    torchvision's blocks count it.
  * Mixed_7c (`InceptionE(max_pool=True)`, FIDInceptionE_2): a 3x3 stride-1 max pool (pad 1)
    instead of the average.
  * Mixed_6a (`InceptionB`) and Mixed_7a (`InceptionD`) are torchvision's: strided convs and a
    3x3 stride-2 max pool, no padding.
  * the input: [N, 3, H, W] in [0, 1], resized to 299x299 by `F.interpolate(mode='bilinear',
    align_corners=False)` (no antialiasing), then 2x - 1 to [-1, 1] (pytorch-fid's
    resize_input and normalize_input, in that order).
  * the output: the 2048-d global average ("pool3", pytorch-fid's block 3, [N, 2048] here
    rather than [N, 2048, 1, 1]) and the logits of Inception3's fc (1008 classes, the
    TensorFlow graph's; dropout is the identity in eval mode), which pytorch-fid does not
    compute but the Inception Score uses.

Parameter and buffer names are torchvision's / pytorch-fid's (`Mixed_5b.branch1x1.conv.weight`,
`....bn.running_var`, `fc.weight`; no AuxLogits, as `aux_logits=False`), so its state dict
loads into pytorch-fid's network and goes through gan_jax/tools/convert_inception.py unchanged.
`python tests/inception_torch.py` prints the parameter count and the output shapes.
"""

import torch
from torch import nn
from torch.nn import functional as F

SIZE = 299
NUM_CLASSES = 1008


class BasicConv2d(nn.Module):
  """Conv (no bias) -> batch norm (eps 1e-3) -> ReLU."""

  def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg_pool_fid(x):
  """3x3 stride-1 average over the real pixels only: TensorFlow's, not torchvision's."""
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool_reduce(x):
  """3x3 stride-2 max pool, no padding: the stem's and the grid reductions'."""
  return F.max_pool2d(x, 3, stride=2)


class InceptionA(nn.Module):
  """Mixed_5b..5d (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | FID average pool-1x1."""

  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, 1)
    self.branch5x5_1 = BasicConv2d(cin, 48, 1)
    self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool_features, 1)

  def forward(self, x):
    five = self.branch5x5_2(self.branch5x5_1(x))
    double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    pooled = self.branch_pool(_avg_pool_fid(x))
    return torch.cat([self.branch1x1(x), five, double, pooled], 1)


class InceptionB(nn.Module):
  """Mixed_6a (35x35 -> 17x17): stride-2 3x3 | 1x1-3x3-stride-2 3x3 | max pool."""

  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

  def forward(self, x):
    double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return torch.cat([self.branch3x3(x), double, _max_pool_reduce(x)], 1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (17x17): factorised 7x7 convs (1x7 and 7x1) and the FID average pool."""

  def __init__(self, cin, channels_7x7):
    super().__init__()
    c7 = channels_7x7
    row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
    self.branch1x1 = BasicConv2d(cin, 192, 1)
    self.branch7x7_1 = BasicConv2d(cin, c7, 1)
    self.branch7x7_2 = BasicConv2d(c7, c7, **row)
    self.branch7x7_3 = BasicConv2d(c7, 192, **col)
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
    self.branch_pool = BasicConv2d(cin, 192, 1)

  def forward(self, x):
    seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    double = x
    for i in range(1, 6):
      double = getattr(self, f'branch7x7dbl_{i}')(double)
    pooled = self.branch_pool(_avg_pool_fid(x))
    return torch.cat([self.branch1x1(x), seven, double, pooled], 1)


class InceptionD(nn.Module):
  """Mixed_7a (17x17 -> 8x8): 1x1-stride-2 3x3 | 1x1-1x7-7x1-stride-2 3x3 | max pool."""

  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, 1)
    self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

  def forward(self, x):
    three = self.branch3x3_2(self.branch3x3_1(x))
    seven = x
    for i in range(1, 5):
      seven = getattr(self, f'branch7x7x3_{i}')(seven)
    return torch.cat([three, seven, _max_pool_reduce(x)], 1)


class InceptionE(nn.Module):
  """Mixed_7b / 7c (8x8): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1. The pool is
  the FID average (FIDInceptionE_1), or with `max_pool` a 3x3 stride-1 max pool padded by 1
  (FIDInceptionE_2: the TensorFlow graph's last block)."""

  def __init__(self, cin, max_pool=False):
    super().__init__()
    self.max_pool = max_pool
    self.branch1x1 = BasicConv2d(cin, 320, 1)
    self.branch3x3_1 = BasicConv2d(cin, 384, 1)
    self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, 1)

  def forward(self, x):
    t = self.branch3x3_1(x)
    three = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
    t = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    double = torch.cat([self.branch3x3dbl_3a(t), self.branch3x3dbl_3b(t)], 1)
    if self.max_pool:
      pooled = F.max_pool2d(x, 3, stride=1, padding=1)
    else:
      pooled = _avg_pool_fid(x)
    return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
  """[N, 3, H, W] images in [0, 1] -> (pool3 features [N, 2048], logits [N, 1008])."""

  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
    self.Mixed_5b = InceptionA(192, pool_features=32)
    self.Mixed_5c = InceptionA(256, pool_features=64)
    self.Mixed_5d = InceptionA(288, pool_features=64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b = InceptionC(768, channels_7x7=128)
    self.Mixed_6c = InceptionC(768, channels_7x7=160)
    self.Mixed_6d = InceptionC(768, channels_7x7=160)
    self.Mixed_6e = InceptionC(768, channels_7x7=192)
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b = InceptionE(1280)
    self.Mixed_7c = InceptionE(2048, max_pool=True)
    self.fc = nn.Linear(2048, NUM_CLASSES)

  def forward(self, images):
    x = F.interpolate(images, size=(SIZE, SIZE), mode='bilinear', align_corners=False)
    x = 2 * x - 1                      # after the resize, as pytorch-fid does
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = _max_pool_reduce(x)            # 147 -> 73
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = _max_pool_reduce(x)            # 71 -> 35
    for name in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c',
                 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c'):
      x = getattr(self, name)(x)
    features = x.mean(dim=(2, 3))      # AdaptiveAvgPool2d((1, 1)), flattened
    return features, self.fc(features)


def random_state_dict(net, seed=0):
  """Random values for every entry of `net.state_dict()` (a FIDInceptionV3, or torchvision's
  Inception3 with 1008 classes: the same names and shapes): convs N(0, 2 / fan_in) (He: the
  activations neither vanish nor blow up over the ~95 layers), the fc N(0, 1 / fan_in) (logits of
  order the features', so the softmax is not one-hot), batch-norm scales and running variances
  in [0.5, 1.5) and shifts and running means N(0, 0.1^2), away from (1, 0) so that a mix-up of
  mean, variance, scale and bias would show; num_batches_tracked kept."""
  gen = torch.Generator().manual_seed(seed)
  state = {}
  for key, value in net.state_dict().items():
    if key.endswith('num_batches_tracked'):
      state[key] = value.clone()
    elif key.endswith('conv.weight') or key == 'fc.weight':
      gain = 2.0 if key.endswith('conv.weight') else 1.0
      state[key] = torch.randn(value.shape, generator=gen) * (gain / value[0].numel()) ** 0.5
    elif key.endswith('running_var') or key.endswith('bn.weight'):
      state[key] = 0.5 + torch.rand(value.shape, generator=gen)
    else:   # running_mean, bn.bias, fc.bias
      state[key] = 0.1 * torch.randn(value.shape, generator=gen)
  return state


if __name__ == '__main__':
  model = FIDInceptionV3().eval()
  print('parameters:', sum(p.numel() for p in model.parameters()))
  with torch.no_grad():
    pool3, logits = model(torch.rand(1, 3, 64, 64))
  print('pool3', tuple(pool3.shape), 'logits', tuple(logits.shape))
