"""ADA's 'bgc' pipeline as the official StyleGAN2-ADA code computes it
(github.com/NVlabs/stylegan2-ada-pytorch, training/augment.py with torch_utils/ops/upfirdn2d.py's
reference path), in plain torch on NCHW images, for tests/test_ada.py to check gan_jax/ada.py.

The random draws are inputs (the values gan_jax.ada.draw returns, as tensors), so both sides see
the same parameters; everything after the draws follows the official code:

  * the inverse geometric matrix, built by right-multiplying the inverses in the official order;
  * padding: the transformed output corners of the whole batch give one reflect margin (plus
    twice the filter's quarter length, within [0, side - 1], rounded up), and the matrix's
    origin moves by half the margins' difference;
  * `upfirdn2d` as the official reference path: zero insertion, zero padding (negative: a crop),
    a per-channel convolution with the separable filter (flipped unless flip_filter), striding;
    2x up with gain 4 and padding (6, 5), 2x down with padding -1 and flip_filter;
  * the matrix taken to normalised coordinates, F.affine_grid and F.grid_sample (bilinear, zeros
    outside, align_corners=False) onto the image extended by 3 pixels each side;
  * the color matrix, built by left-multiplying in the official order; RGB through its 3x4 part,
    one channel through the mean of its RGB rows (hue and saturation skipped there).

As the official, a batch in which some geometric (color) transform is enabled goes through the
whole resampling (color matrix), even where its matrix is the identity.
"""

import numpy as np
import torch
from torch.nn import functional as F

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]
GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')
COLOR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')


def _filter():
  """The official setup_filter of sym6: float32, normalised to sum 1, kept 1-D (12 taps >= 8)."""
  f = torch.as_tensor(SYM6, dtype=torch.float32)
  return f / f.sum()


def _const(rows):
  return torch.as_tensor(np.asarray(rows), dtype=torch.float32)


def matrix(rows):
  """Rows of numbers and [B] tensors -> [B, n, m]; numbers are broadcast."""
  like = next(e for row in rows for e in row if isinstance(e, torch.Tensor))
  entries = [e if isinstance(e, torch.Tensor) else torch.full_like(like, float(e))
             for row in rows for e in row]
  return torch.stack(entries, dim=-1).reshape(like.shape + (len(rows), len(rows[0])))


def translate2d(tx, ty):
  return matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
  return matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta):
  return matrix([[torch.cos(theta), torch.sin(-theta), 0], [torch.sin(theta), torch.cos(theta), 0],
                 [0, 0, 1]])


def translate3d(tx, ty, tz):
  return matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]])


def scale3d(sx, sy, sz):
  return matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]])


def rotate3d(v, theta):
  vx, vy, vz = v[0], v[1], v[2]
  s, c = torch.sin(theta), torch.cos(theta)
  cc = 1 - c
  return matrix([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                 [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                 [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                 [0, 0, 0, 1]])


# The official inverses: each undoes its forward matrix.
def translate2d_inv(tx, ty):
  return translate2d(-tx, -ty)


def scale2d_inv(sx, sy):
  return scale2d(1 / sx, 1 / sy)


def rotate2d_inv(theta):
  return rotate2d(-theta)


def upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), flip_filter=False, gain=1):
  """The official reference upfirdn2d for a 1-D (separable) filter; pad = (x0, x1, y0, y1)."""
  b, c, h, w = x.shape
  x = x.reshape(b, c, h, 1, w, 1)
  x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
  x0, x1, y0, y1 = pad
  x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
  x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
  f = f * gain ** 0.5  # the 1-D filter's share of the gain
  if not flip_filter:
    f = f.flip(0)
  weight = f[None, None].repeat(c, 1, 1)  # [C, 1, taps]
  x = F.conv2d(x, weight.unsqueeze(2), groups=c)  # along W
  x = F.conv2d(x, weight.unsqueeze(3), groups=c)  # along H
  return x[:, :, ::down, ::down]


def upsample2d(x, f):
  taps = f.shape[0]
  return upfirdn2d(x, f, up=2, pad=((taps + 1) // 2, (taps - 2) // 2) * 2, gain=4)


def downsample2d(x, f, padding):
  taps = f.shape[0]
  p0, p1 = padding + (taps - 1) // 2, padding + (taps - 2) // 2
  return upfirdn2d(x, f, down=2, pad=(p0, p1, p0, p1), flip_filter=True)


def geometric_matrix(d, height, width):
  """[B, 3, 3] inverse matrix from the draws `d` (tensors), in the official order."""
  g_inv = torch.eye(3).expand(d['xflip'].shape[0], 3, 3)
  g_inv = g_inv @ scale2d_inv(1 - 2 * d['xflip'], 1)
  g_inv = g_inv @ rotate2d_inv(-np.pi / 2 * d['rotate90'])
  t = d['xint']
  g_inv = g_inv @ translate2d_inv(torch.round(t[:, 0] * width), torch.round(t[:, 1] * height))
  g_inv = g_inv @ scale2d_inv(d['scale'], d['scale'])
  g_inv = g_inv @ rotate2d_inv(-d['rotate_pre'])
  g_inv = g_inv @ scale2d_inv(d['aniso'], 1 / d['aniso'])
  g_inv = g_inv @ rotate2d_inv(-d['rotate_post'])
  t = d['xfrac']
  return g_inv @ translate2d_inv(t[:, 0] * width, t[:, 1] * height)


def geometric(images, g_inv):
  """The official execution of the inverse matrices on NCHW images (one margin per batch)."""
  b, c, h, w = images.shape
  f = _filter()
  hz_pad = f.shape[0] // 4
  cx, cy = (w - 1) / 2, (h - 1) / 2
  corners = _const([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]])
  cp = g_inv @ corners.t()  # [B, xyz, corner]
  margin = cp[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, B * corner]
  margin = torch.cat([-margin, margin]).max(dim=1).values  # x0, y0, x1, y1
  margin = margin + _const([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2)
  margin = margin.max(_const([0, 0] * 2)).min(_const([w - 1, h - 1] * 2))
  mx0, my0, mx1, my1 = (int(m) for m in margin.ceil().to(torch.int32))

  images = F.pad(images, [mx0, mx1, my0, my1], mode='reflect')
  g_inv = translate2d(torch.full([b], (mx0 - mx1) / 2), torch.full([b], (my0 - my1) / 2)) @ g_inv
  images = upsample2d(images, f)
  one = torch.ones([b])
  g_inv = scale2d(2 * one, 2 * one) @ g_inv @ scale2d_inv(2 * one, 2 * one)
  g_inv = translate2d(-0.5 * one, -0.5 * one) @ g_inv @ translate2d_inv(-0.5 * one, -0.5 * one)

  shape = [b, c, (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2]
  # the official's scalars are Python floats, inverted in float64 before the cast to float32
  # (inverting the float32 2 / side instead moves theta by an ulp on non-square images)
  g_inv = (scale2d(one * (2 / images.shape[3]), one * (2 / images.shape[2])) @ g_inv
           @ scale2d(one * (1 / (2 / shape[3])), one * (1 / (2 / shape[2]))))
  grid = F.affine_grid(g_inv[:, :2, :], shape, align_corners=False)
  images = F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
  return downsample2d(images, f, padding=-hz_pad * 2)


def color_matrix(d, channels):
  """[B, 4, 4] color matrix from the draws `d`, in the official order."""
  b = d['brightness'].shape[0]
  eye = torch.eye(4)
  v = _const(np.asarray([1, 1, 1, 0]) / np.sqrt(3))
  c = eye.expand(b, 4, 4)
  c = translate3d(d['brightness'], d['brightness'], d['brightness']) @ c
  c = scale3d(d['contrast'], d['contrast'], d['contrast']) @ c
  c = (eye - 2 * torch.outer(v, v) * d['lumaflip'][:, None, None]) @ c
  if channels > 1:
    c = rotate3d(v, d['hue']) @ c
    c = (torch.outer(v, v) + (eye - torch.outer(v, v)) * d['saturation'][:, None, None]) @ c
  return c


def color(images, c):
  b, channels, h, w = images.shape
  x = images.reshape(b, channels, h * w)
  if channels == 3:
    x = c[:, :3, :3] @ x + c[:, :3, 3:]
  elif channels == 1:
    m = c[:, :3, :].mean(dim=1, keepdim=True)
    x = x * m[:, :, :3].sum(dim=2, keepdim=True) + m[:, :, 3:]
  else:
    raise ValueError(channels)
  return x.reshape(b, channels, h, w)


def augment(images, draws, multipliers):
  """The pipeline on NCHW float32 images with the given draws ({name: tensor [B] or [B, 2]}).

  `multipliers` ({name: float}, GEOMETRIC and COLOR names) says which groups are enabled: a
  group runs on the whole batch when any of its transforms is.
  """
  _, channels, h, w = images.shape
  if any(multipliers.get(name, 0) > 0 for name in GEOMETRIC):
    images = geometric(images, geometric_matrix(draws, h, w))
  if any(multipliers.get(name, 0) > 0 for name in COLOR):
    images = color(images, color_matrix(draws, channels))
  return images
