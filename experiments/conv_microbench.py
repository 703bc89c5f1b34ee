r"""Times each pass of a model's stride-2 convolutions on this backend.

  python experiments/conv_microbench.py [--model=wgan_gp_mnist|dcgan_cifar10] [--batch=64]
  taskset -c 0 python experiments/conv_microbench.py --kinds --in_loop   # one core

With --kinds: for each convolution of the conv and ResNet models (a transposed conv counts as
its adjoint convolution), milliseconds of the three maps of gan_jax.layers (F: the convolution,
D: its input gradient, W: its weight gradient) in their lax and matmul forms (and W as one
product per kernel tap), and the largest difference from `jax.vjp` of the plain lax
convolution. This is what 'hybrid' chooses by. With --kinds --bf16: the same maps on bfloat16
operands summed in float32, in XLA's lax form (`preferred_element_type=float32`) and in
conv_impl 'bf16''s matmul form (gan_jax/layers.py: im2col and XLA's bfloat16 dot); the
difference is then bfloat16's rounding.

Without it, for every stride-2 layer shape and each impl of gan_jax.layers ('xla': lax
convolutions with JAX's derivatives; 'fast': matmul forms of F, D and W; 'hybrid': the form of
each map that 'hybrid' chooses), prints
milliseconds for the forward pass, the input gradient (dx), the weight gradient (dw) and the
gradient penalty's second-order term (the weight gradient of |dx|^2), with random cotangents so
nothing simplifies away.
"""

import functools
import os
import sys
import time

from absl import app, flags
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax import layers  # pylint: disable=g-import-not-at-top

flags.DEFINE_integer('batch', 64, 'Batch size.')
flags.DEFINE_bool('in_loop', False, 'Time each pass inside a length-1 lax.scan, as the '
                  'critic updates (and steps_per_call > 1) run: XLA CPU compiles some conv '
                  'passes differently in a while loop.')
flags.DEFINE_bool('kinds', False, 'Time the F, D and W maps of every convolution of the '
                  'models in each of their forms.')
flags.DEFINE_bool('bf16', False, '--kinds: the maps on bfloat16 operands summed in float32 '
                  "(lax, and conv_impl 'bf16''s matmul form) instead.")
flags.DEFINE_enum('model', 'wgan_gp_mnist', ['wgan_gp_mnist', 'dcgan_cifar10'], 'Layer shapes.')
FLAGS = flags.FLAGS

# (name, op, input shape without batch, kernel shape): each model's stride-2 layers.
LAYERS = {
    'wgan_gp_mnist': [
        ('conv 28x28x1 -> 14x14x64', 'conv', (28, 28, 1), (5, 5, 1, 64)),
        ('conv 14x14x64 -> 7x7x128', 'conv', (14, 14, 64), (5, 5, 64, 128)),
        ('conv 7x7x128 -> 4x4x256', 'conv', (7, 7, 128), (5, 5, 128, 256)),
        ('convT 7x7x128 -> 14x14x64', 'convT', (7, 7, 128), (5, 5, 128, 64)),
        ('convT 14x14x64 -> 28x28x1', 'convT', (14, 14, 64), (5, 5, 64, 1)),
    ],
    'dcgan_cifar10': [
        ('conv 32x32x3 -> 16x16x128', 'conv', (32, 32, 3), (4, 4, 3, 128)),
        ('conv 16x16x128 -> 8x8x256', 'conv', (16, 16, 128), (4, 4, 128, 256)),
        ('conv 8x8x256 -> 4x4x512', 'conv', (8, 8, 256), (4, 4, 256, 512)),
        ('convT 4x4x512 -> 8x8x256', 'convT', (4, 4, 512), (4, 4, 512, 256)),
        ('convT 8x8x256 -> 16x16x128', 'convT', (8, 8, 256), (4, 4, 256, 128)),
        ('convT 16x16x128 -> 32x32x3', 'convT', (16, 16, 128), (4, 4, 128, 3)),
    ],
}
OPS = {'conv': layers.FORMS['conv'], 'convT': layers.FORMS['conv_transpose']}


def _in_loop(fn):
  def looped(*args):
    out, _ = jax.lax.scan(lambda carry, _: (fn(*args), None), fn(*args) * 0, None, length=1)
    return out
  return looped


def _ms(fn, *args, repeats=3):
  fn = jax.jit(_in_loop(fn) if FLAGS.in_loop else fn)
  jax.block_until_ready(fn(*args))
  t0 = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t0) / repeats * 1000


def passes(op):
  """forward, dx, dw and the second-order term of `op(x, w)` for a cotangent g."""
  dx = lambda x, w, g: jax.vjp(lambda x: op(x, w), x)[1](g)[0]
  return {
      'fwd': lambda x, w, g: op(x, w),
      'dx': dx,
      'dw': lambda x, w, g: jax.vjp(lambda w: op(x, w), w)[1](g)[0],
      'd2': lambda x, w, g: jax.grad(lambda w: jnp.sum(dx(x, w, g) ** 2))(w),
  }


# (name, input side, Cin, F, k, (lo, hi) padding, stride): the convolutions of the models; a
# generator's transposed conv is its adjoint convolution (e.g. 4x4x256 -> 8x8x128, k 5, is the
# conv 8x8x128 -> 4x4x256 with padding (1, 2)).
CONVS = [
    ('DCGAN 32x32x3 -> 16x16x128', 32, 3, 128, 4, (1, 1), 2),
    ('DCGAN 16x16x128 -> 8x8x256', 16, 128, 256, 4, (1, 1), 2),
    ('DCGAN 8x8x256 -> 4x4x512', 8, 256, 512, 4, (1, 1), 2),
    ('WGAN-GP 28x28x1 -> 14x14x64', 28, 1, 64, 5, (1, 2), 2),
    ('WGAN-GP 14x14x64 -> 7x7x128', 14, 64, 128, 5, (1, 2), 2),
    ('WGAN-GP 7x7x128 -> 4x4x256', 7, 128, 256, 5, (2, 2), 2),
    ('WGAN-GP G 8x8x128 -> 4x4x256', 8, 128, 256, 5, (1, 2), 2),
    ('ResNet 3x3 32x32x3 -> 128', 32, 3, 128, 3, (1, 1), 1),
    ('ResNet 3x3 32x32x128 -> 128', 32, 128, 128, 3, (1, 1), 1),
    ('ResNet 3x3 16x16x128 -> 128', 16, 128, 128, 3, (1, 1), 1),
    ('ResNet 3x3 8x8x128 -> 128', 8, 128, 128, 3, (1, 1), 1),
    ('ResNet 3x3 32x32x128 -> 3', 32, 128, 3, 3, (1, 1), 1),
    ('ResNet 1x1 32x32x128 -> 128', 32, 128, 128, 1, (0, 0), 1),
    ('ResNet 1x1 16x16x3 -> 128', 16, 3, 128, 1, (0, 0), 1),
]
KINDS = {'F': {'lax': layers._f_lax, 'matmul': layers._f_matmul},
         'D': {'lax': layers._d_lax, 'matmul': layers._d_matmul},
         'W': {'lax': layers._w_lax, 'matmul': layers._w_matmul, 'taps': layers._w_taps}}


def _on_bf16(lax_form):
  """A lax form of gan_jax.layers on bfloat16 operands, summed in float32."""
  return lambda a, b, geo: lax_form(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), geo,
                                    jnp.float32)


# --bf16: layers._f_lax, _d_lax and _w_lax on bfloat16 operands, and conv_impl 'bf16''s forms
BF16_KINDS = {'F': {'lax': _on_bf16(layers._f_lax), 'matmul': layers._f_bf16},
              'D': {'lax': _on_bf16(layers._d_lax), 'matmul': layers._d_bf16},
              'W': {'lax': _on_bf16(layers._w_lax), 'matmul': layers._w_bf16}}


def kinds(key):
  table = BF16_KINDS if FLAGS.bf16 else KINDS
  print(f'{"convolution":30s} ' + ' '.join(f'{k + " " + f:>9s}' for k, forms in table.items()
                                            for f in forms) + '  max |diff|')
  for name, n, cin, f, k, pads, stride in CONVS:
    geo = layers.Geometry((n, n), k, (pads, pads), 'bf16' if FLAGS.bf16 else 'hybrid', stride)
    kx, kw, kg = jax.random.split(key, 3)
    x = jax.random.normal(kx, (FLAGS.batch, n, n, cin))
    w = jax.random.normal(kw, (k, k, cin, f)) * 0.05
    g = jax.random.normal(kg, (FLAGS.batch, *geo.out_size, f))
    lax_conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), geo.pads,
                                                         dimension_numbers=layers.DIMS)
    y, vjp = jax.vjp(lax_conv, x, w)
    want = {'F': (y, (x, w)), 'D': (vjp(g)[0], (g, w)), 'W': (vjp(g)[1], (x, g))}
    times, diff = [], 0.0
    for kind, forms in table.items():
      ref, args = want[kind]
      for form in forms.values():
        fn = functools.partial(form, geo=geo)
        diff = max(diff, float(jnp.max(jnp.abs(fn(*args) - ref)) / jnp.max(jnp.abs(ref))))
        times.append(_ms(fn, *args))
    print(f'{name:30s} ' + ' '.join(f'{t:9.1f}' for t in times) + f'  {diff:.0e} (relative)',
          flush=True)


def main(_):
  key = jax.random.PRNGKey(0)
  if FLAGS.kinds:
    print(f'backend={jax.default_backend()} batch={FLAGS.batch} in_loop={FLAGS.in_loop} '
          f'bf16={FLAGS.bf16} (milliseconds)')
    kinds(key)
    return
  print(f'backend={jax.default_backend()} batch={FLAGS.batch} in_loop={FLAGS.in_loop} '
        '(milliseconds)')
  print(f'{"layer":28s} {"form":6s} {"fwd":>8s} {"dx":>8s} {"dw":>8s} {"d2":>8s}')
  for name, kind, x_shape, w_shape in LAYERS[FLAGS.model]:
    x = jax.random.normal(key, (FLAGS.batch, *x_shape))
    w = jax.random.normal(key, w_shape) * 0.05
    for impl in ('xla', 'fast', 'hybrid'):
      op = OPS[kind][impl]
      g = jax.random.normal(key, op(x, w).shape)
      times = [_ms(fn, x, w, g) for fn in passes(op).values()]
      print(f'{name:28s} {impl:6s} ' + ' '.join(f'{t:8.1f}' for t in times), flush=True)


if __name__ == '__main__':
  app.run(main)
