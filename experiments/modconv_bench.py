r"""StyleGAN2's modulated convolution in its two forms (gan_jax/models/stylegan2/ops.py's
`modulated_conv2d`), forward and backward, at the layer shapes of configs/stylegan2.py:

  fused      per-example kernels w * styles, demodulated, in ONE grouped convolution (the
             examples as feature groups); the official code's form in evaluation
  unfused    x * styles, the shared kernel's convolution, then times the demodulation
             coefficients; the official code's form in training, and gan_jax's

Both compute the same function (tests/test_stylegan2_ops.py). Without --target it times each
on this host's devices (median of --rounds, after a warm-up call; run it on a quiet machine);
with --target (a Python with libtpu: requirements-tpu.txt) it compiles each for one chip of
that TPU and prints XLA's memory and cost analyses instead (no chip needed): the same FLOPs,
but the fused form builds a kernel per example.

  python experiments/modconv_bench.py --rounds=5
  .venv-tpu/bin/python experiments/modconv_bench.py --target=v5e-8

Two more timings of what a CPU picks (conv_impl other than 'xla', 'hybrid' there):
  --generator  the whole 'small' generator's evaluation forward (32 px, a batch of --batch
               samples, as sampling and evaluations call it) fused and unfused: on a CPU
               gan_jax samples with the unfused form too (networks.GeneratorNetwork.synthesize)
  --filters    the FIR filter (upfirdn2d) with its gradient at the 'small' preset's shapes,
               as lax's grouped convolution ('xla') and as two 1-D passes of strided slices
               ('hybrid': what a CPU trains with)

  python experiments/modconv_bench.py --generator --filters --rounds=5

And ADA's augmentation (gan_jax/ada.py, pipeline 'bgc' at p 1: every transform fires), forward
and gradient with respect to the images as the critic's and generator's updates take it, at
each side of --ada_sides (batch --ada_batch, 3 channels): timed here, or with --target compiled
for one chip of that TPU (XLA's memory and cost analyses).

  python experiments/modconv_bench.py --ada --rounds=5
  .venv-tpu/bin/python experiments/modconv_bench.py --ada --target=v5e-8
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from gan_jax import flops  # pylint: disable=g-import-not-at-top
from gan_jax.models.stylegan2 import ops  # pylint: disable=g-import-not-at-top

# name -> (batch, resolution of the input, in channels, out channels, up): a synthesis layer of
# configs/stylegan2.py's 'small' option (batch 32, 128 channels at 8-16 px) and of its 'cifar'
# setting (32 per GPU, 512 channels at every resolution), 3x3 kernels; `up` 2 is a block's
# first convolution (upsampling with the FIR filter), 1 its second.
LAYERS = {
    'small_16px_conv1': (32, 16, 128, 128, 1),
    'small_16px_conv0_up': (32, 8, 128, 128, 2),
    'cifar_16px_conv1': (32, 16, 512, 512, 1),
    'cifar_32px_conv0_up': (32, 16, 512, 512, 2),
}


def _layer(fused: bool, up: int):
  """(x, weight, styles, cotangent) -> the gradients of <modulated_conv2d(...), cotangent>."""
  f = ops.setup_filter()  # the synthesis layer's call (networks.SynthesisLayer)

  def loss(x, weight, styles, cotangent):
    y = ops.modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f,
                             flip_weight=up == 1, demodulate=True, fused_modconv=fused)
    return jnp.sum(y * cotangent)

  return jax.grad(loss, argnums=(0, 1, 2))


def _inputs(batch, res, cin, cout, up, abstract_on=None):
  shapes = [(batch, res, res, cin), (3, 3, cin, cout), (batch, cin),
            (batch, res * up, res * up, cout)]
  if abstract_on is not None:
    sharding = jax.sharding.SingleDeviceSharding(abstract_on)
    return [jax.ShapeDtypeStruct(s, jnp.float32, sharding=sharding) for s in shapes]
  keys = jax.random.split(jax.random.PRNGKey(0), len(shapes))
  return [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, shapes)]


def _compiled_mib(lowered) -> dict:
  """XLA's analyses of a lowered call compiled for its device: temporaries and bytes accessed,
  MiB."""
  compiled = lowered.compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {'temp_mib': round(compiled.memory_analysis().temp_size_in_bytes / 2 ** 20, 1),
          'bytes_accessed_mib': round(cost.get('bytes accessed', float('nan')) / 2 ** 20, 1)}


def _median_ms(fn, args, rounds: int) -> float:
  jax.block_until_ready(fn(*args))  # compile and warm up
  seconds = []
  for _ in range(rounds):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    seconds.append(time.perf_counter() - start)
  return round(1e3 * statistics.median(seconds), 2)


def time_layers(rounds: int, names):
  for name in names:
    batch, res, cin, cout, up = LAYERS[name]
    args = _inputs(batch, res, cin, cout, up)
    row = {'layer': name, 'device': jax.devices()[0].device_kind}
    for fused in (True, False):
      fn = jax.jit(_layer(fused, up))
      form = 'fused' if fused else 'unfused'
      row[f'{form}_gflop'] = round(flops.count(jax.make_jaxpr(fn)(*args).jaxpr) / 1e9, 3)
      row[f'{form}_ms'] = _median_ms(fn, args, rounds)
    row['unfused_speedup'] = round(row['fused_ms'] / row['unfused_ms'], 2)
    print(json.dumps(row), flush=True)


def time_generator(rounds: int, batch: int):
  """configs/stylegan2.py:fashion_mnist,small's generator network (32 px, 1 channel), its
  evaluation forward (train False, random noise) of `batch` z, fused and unfused."""
  from configs import stylegan2  # pylint: disable=g-import-not-at-top
  from gan_jax import layers  # pylint: disable=g-import-not-at-top
  from gan_jax.models.stylegan2 import networks  # pylint: disable=g-import-not-at-top
  m = stylegan2.get_config('fashion_mnist,small').model
  net = networks.GeneratorNetwork(32, 1, 0, m.w_dim, m.w_dim, m.mapping_layers,
                                  m.channel_base, m.channel_max, m.conv_clamp or None,
                                  conv_impl=layers.resolve('auto'))
  z = jax.random.normal(jax.random.PRNGKey(0), (batch, m.w_dim))
  rngs = {'params': jax.random.PRNGKey(1), 'noise': jax.random.PRNGKey(2)}
  params = jax.jit(lambda: net.init(rngs, z[:2]))()
  row = {'generator': 'stylegan2 small, 32 px', 'batch': batch,
         'device': jax.devices()[0].device_kind, 'conv_impl': net.conv_impl}
  for fused in (True, False):
    fn = jax.jit(lambda p, z, fused=fused: net.apply(p, z, train=False, fused_modconv=fused,
                                                      rngs={'noise': jax.random.PRNGKey(3)}))
    row[f'{"fused" if fused else "unfused"}_ms'] = _median_ms(fn, (params, z), rounds)
  row['unfused_speedup'] = round(row['fused_ms'] / row['unfused_ms'], 2)
  print(json.dumps(row), flush=True)


# name -> (input shape, upfirdn2d's up, down, padding, gain): the 'small' preset's filters
# (batch 32): D's blur before a strided 3x3 conv, its 1x1 skip's downsampling, G's filter after
# the transposed conv of an up-sampling layer and its skip's image upsampling.
FILTERS = {
    'small_d_32px_conv1_blur': ((32, 32, 32, 32), 1, 1, 2, 1),
    'small_d_32px_skip_down': ((32, 32, 32, 32), 1, 2, 1, 1),
    'small_g_32px_conv0_up': ((32, 33, 33, 32), 1, 1, 1, 4),
    'small_g_32px_img_up': ((32, 16, 16, 1), 2, 1, (2, 1, 2, 1), 4),
}


def time_filters(rounds: int):
  f = ops.setup_filter()
  for name, (shape, up, down, padding, gain) in FILTERS.items():
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    row = {'filter': name, 'device': jax.devices()[0].device_kind}
    for impl in ('xla', 'hybrid'):
      fn = jax.jit(jax.grad(lambda x, impl=impl: jnp.sum(
          ops.upfirdn2d(x, f, up, down, padding, gain=gain, conv_impl=impl) ** 2)))
      row[f'{impl}_ms'] = _median_ms(fn, (x,), rounds)
    row['hybrid_speedup'] = round(row['xla_ms'] / row['hybrid_ms'], 1)
    print(json.dumps(row), flush=True)


def _ada_grad(side: int):
  """(images, cotangent) -> (augment(images), the gradient of <augment(images), cotangent> with
  respect to the images), at p 1 with a key fixed per side."""
  from gan_jax import ada  # pylint: disable=g-import-not-at-top
  spec = ada.PIPELINES['bgc']

  def grad(images, cotangent):
    augmented, vjp = jax.vjp(lambda x: ada.augment(jax.random.PRNGKey(side), x, 1.0, spec),
                             images)
    return augmented, vjp(cotangent)[0]
  return grad


def ada_rows(sides, batch: int, rounds: int, target: str = ''):
  """A row per side: ADA's forward and gradient timed (median ms) or, with `target`, compiled
  for one chip of that TPU."""
  device = None
  if target:
    from gan_jax import targets  # pylint: disable=g-import-not-at-top
    device = targets.devices(target)[0]
  for side in sides:
    shape = (batch, side, side, 3)
    row = {'ada': 'bgc, p 1', 'images': list(shape)}
    fn = jax.jit(_ada_grad(side))
    if device is None:
      key = jax.random.PRNGKey(0)
      images = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
      row['device'] = jax.devices()[0].device_kind
      row['forward_and_gradient_ms'] = _median_ms(fn, (images, images), rounds)
    else:
      sharding = jax.sharding.SingleDeviceSharding(device)
      abstract = jax.ShapeDtypeStruct(shape, jnp.float32, sharding=sharding)
      row.update(target=target, device_kind=device.device_kind,
                 **_compiled_mib(fn.lower(abstract, abstract)))
    print(json.dumps(row), flush=True)


def compile_layers(target: str, names):
  from gan_jax import targets  # pylint: disable=g-import-not-at-top
  device = targets.devices(target)[0]
  for name in names:
    batch, res, cin, cout, up = LAYERS[name]
    row = {'layer': name, 'target': target, 'device_kind': device.device_kind}
    for fused in (True, False):
      form = 'fused' if fused else 'unfused'
      args = _inputs(batch, res, cin, cout, up, abstract_on=device)
      lowered = jax.jit(_layer(fused, up)).lower(*args)
      row[f'{form}_gflop'] = round(flops.count(jax.make_jaxpr(_layer(fused, up))(*args).jaxpr)
                                   / 1e9, 3)
      row.update({f'{form}_{k}': v for k, v in _compiled_mib(lowered).items()})
    print(json.dumps(row), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=5, help='timed calls per form and layer')
  parser.add_argument('--target', default='', help='a TPU slice (e.g. v5e-8): compile, not time')
  parser.add_argument('--layers', default=','.join(LAYERS),
                      help=f'comma-separated, of {", ".join(LAYERS)}')
  parser.add_argument('--generator', action='store_true',
                      help="time the 'small' generator's evaluation forward (and not --layers)")
  parser.add_argument('--filters', action='store_true',
                      help="time the 'small' preset's FIR filters (and not --layers)")
  parser.add_argument('--batch', type=int, default=250, help='--generator: samples per call')
  parser.add_argument('--ada', action='store_true',
                      help="ADA's augmentation and its gradient (and not --layers)")
  parser.add_argument('--ada_sides', default='32,64,128,256', help='--ada: image sides')
  parser.add_argument('--ada_batch', type=int, default=8, help='--ada: images per call')
  args = parser.parse_args()
  if args.ada:
    sides = [int(s) for s in args.ada_sides.split(',') if s]
    ada_rows(sides, args.ada_batch, args.rounds, args.target)
    return
  if args.generator or args.filters:
    if args.generator:
      time_generator(args.rounds, args.batch)
    if args.filters:
      time_filters(args.rounds)
    return
  names = [n for n in args.layers.split(',') if n]
  unknown = [n for n in names if n not in LAYERS]
  if unknown:
    parser.error(f'unknown layers {unknown}; use some of {", ".join(LAYERS)}')
  if args.target:
    compile_layers(args.target, names)
  else:
    time_layers(args.rounds, names)


if __name__ == '__main__':
  main()
