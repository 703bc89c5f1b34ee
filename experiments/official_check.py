r"""gan_jax's StyleGAN2 and ADA against the official stylegan2-ada-pytorch modules themselves,
run from a checkout of github.com/NVlabs/stylegan2-ada-pytorch (its CPU reference paths). The
tests compare gan_jax with tests/stylegan2_torch.py and tests/ada_torch.py, written from the
official code (CI cannot download it, and its license keeps it out of this repository); this
script is the one-off comparison that ties those references to the official modules, so that
anyone can make it again:

  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada   # d72cc7d was checked
  python experiments/official_check.py --official=/tmp/sg2ada

Networks (32x32x3, channel_base 512, channel_max 32, conv_clamp 1, z 16, w 24, batch 4; random
weights in gan_jax's layout, copied into the official modules by their own names, and into the
references): the generator (conditional with fused modulated convolutions, unconditional
unfused; truncation 0.8, const noise with random strengths) and the discriminator ('resnet'
conditional, 'orig' unconditional, minibatch-std groups of 2): outputs and the gradients of
every parameter and of D's input, gan_jax and the reference each against the official. Parameter
counts of the official configurations, gan_jax's against the official modules'.

ADA ('bgc' at p 0.5 and 1, three batch shapes): gan_jax.ada's draws fed to the official
AugmentPipe (its torch.rand and torch.randn calls answered, in its own order, with the values
that give those draws), one example at a time (gan_jax pads each example by its own margin;
the official pads a batch by its largest) for gan_jax and on the whole batch for
tests/ada_torch.py; images and the gradient with respect to them.

Prints one line per comparison (the largest difference and its tolerance, the tests' own) and
exits 1 if any is over. Float32; about a minute on 2 CPU cores.
"""

import contextlib
import dataclasses
import os
import sys
from unittest import mock

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tests'))

# pylint: disable=g-import-not-at-top,wrong-import-position
from gan_jax import ada
from gan_jax.models.stylegan2 import networks

_OFFICIAL = flags.DEFINE_string('official', None, 'a checkout of stylegan2-ada-pytorch',
                                required=True)
_PARTS = flags.DEFINE_list('parts', ['networks', 'counts', 'ada'], 'what to compare')

SMALL = dict(channel_base=512, channel_max=32, conv_clamp=1.0)
Z, W, CLASSES, BATCH, RES = 16, 24, 10, 4, 32
# tests/test_stylegan2_networks.py's tolerances: outputs atol + rtol, gradients a fraction of
# the largest of the same parameter (noise strengths: one sum over a whole layer's outputs)
ATOL, RTOL, GRAD_TOL, NOISE_GRAD_TOL = 2e-5, 1e-4, 1e-4, 1e-3
# tests/test_ada.py's: images through the geometric group, gradients of the largest
ADA_ATOL, ADA_GRAD_TOL = 5e-5, 2e-5


class Report:
  """Lines of 'what: largest difference (tolerance) ok|OVER'; `failed` if any is over."""

  def __init__(self):
    self.failed = False

  def line(self, what: str, difference: float, tolerance: float, ok=None, said=None):
    ok = difference <= tolerance if ok is None else ok
    self.failed |= not ok
    print(f'{what}: {difference:.3g} ({said or f"tolerance {tolerance:.3g}"}) '
          f'{"ok" if ok else "OVER"}', flush=True)

  def allclose(self, what, ours, theirs, atol=ATOL, rtol=RTOL):
    """The largest |ours - theirs|; within atol + rtol |theirs| everywhere."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    difference = np.abs(ours - theirs)
    self.line(what, float(difference.max()), atol,
              ok=bool(np.all(difference <= atol + rtol * np.abs(theirs))),
              said=f'tolerance {atol:.3g} + {rtol:.3g} of the value')

  def grads(self, what, pairs):
    """{parameter: (a gradient, the official's)}, each as a fraction of the official's largest."""
    worst = {}
    for name, (ours, theirs) in pairs.items():
      kind = 'noise strengths' if name.endswith('noise_strength') else 'parameters'
      scale = max(float(np.abs(theirs).max()), 1e-12)
      worst[kind] = max(worst.get(kind, 0.0), float(np.abs(ours - theirs).max()) / scale)
    for kind, difference in sorted(worst.items()):
      self.line(f'{what}, gradients of the {kind}', difference,
                NOISE_GRAD_TOL if kind == 'noise strengths' else GRAD_TOL)


def _normal(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def _label_inputs(torch, labels, c_dim):
  """(the official's one-hot labels, tests/stylegan2_torch.py's class indices); None, None
  when unconditional."""
  if not c_dim:
    return None, None
  indices = torch.tensor(np.asarray(labels)).long()
  return torch.nn.functional.one_hot(indices, c_dim).float(), indices


def check_generator(report, official, ref, torch, c_dim, fused):
  z = _normal(1, (BATCH, Z))
  labels = jnp.array([3, 0, 9, 3]) if c_dim else None
  gen = networks.GeneratorNetwork(RES, 3, c_dim, Z, W, mapping_layers=2, **SMALL)
  variables = ref.random_variables(gen, z, labels)
  params, state = variables['params'], variables[networks.STATE]
  cot = _normal(5, (BATCH, RES, RES, 3))

  @jax.jit
  def run(params):
    f = lambda p: gen.apply({'params': p, networks.STATE: state}, z, labels,
                            truncation_psi=0.8, noise_mode='const', fused_modconv=fused)
    images, vjp = jax.vjp(f, params)
    return images, vjp(cot)[0]

  images, grads = run(params)
  them = official.Generator(Z, c_dim, W, RES, 3, mapping_kwargs=dict(num_layers=2),
                            synthesis_kwargs=SMALL)
  mine = ref.Generator(Z, c_dim, W, RES, 3, mapping_layers=2, **SMALL)
  official_labels, reference_labels = _label_inputs(torch, labels, c_dim)
  what = f'generator ({"conditional" if c_dim else "unconditional"}, ' \
         f'{"fused" if fused else "unfused"})'
  outputs = {}
  for name, module in (('official', them), ('reference', mine)):
    copied = ref.load_flax(module, variables)   # (a KeyError for a tensor gan_jax lacks)
    assert copied == len(jax.tree.leaves(variables)), (name, copied)   # ... and none extra
    module.eval()  # (in training mode the mapping moves w_avg before truncating)
    c = official_labels if name == 'official' else reference_labels
    out = module(ref.tensor(z), c, truncation_psi=0.8, noise_mode='const', fused_modconv=fused)
    (out * ref.tensor(cot.transpose(0, 3, 1, 2))).sum().backward()
    outputs[name] = _nhwc(out)
  report.allclose(f'{what}: gan_jax images', images, outputs['official'])
  report.grads(f'{what}: gan_jax', ref.grads_in_torch_layout(them, grads))
  report.allclose(f'{what}: tests/stylegan2_torch.py images', outputs['reference'],
                  outputs['official'])
  mine_grads = dict(mine.named_parameters())
  report.grads(f'{what}: tests/stylegan2_torch.py',
               {n: (ref.torch_grad(mine_grads[n]), ref.torch_grad(p))
                for n, p in them.named_parameters()})


def check_discriminator(report, official, ref, torch, c_dim, architecture):
  labels = jnp.array([3, 0, 9, 3]) if c_dim else None
  x = np.random.default_rng(2).uniform(-1, 1, (BATCH, RES, RES, 3)).astype(np.float32)
  critic = networks.DiscriminatorNetwork(RES, c_dim, architecture, mbstd_group_size=2, **SMALL)
  variables = ref.random_variables(critic, x, labels, seed=1)
  cot = _normal(7, (BATCH, 1))

  @jax.jit
  def run(params, x):
    scores, vjp = jax.vjp(lambda p, x: critic.apply({'params': p}, x, labels), params, x)
    return scores, vjp(cot)

  scores, (grads, x_grad) = run(variables['params'], x)
  them = official.Discriminator(c_dim, RES, 3, architecture=architecture,
                                channel_base=SMALL['channel_base'],
                                channel_max=SMALL['channel_max'],
                                conv_clamp=SMALL['conv_clamp'],
                                epilogue_kwargs=dict(mbstd_group_size=2))
  mine = ref.Discriminator(c_dim, RES, 3, architecture, mbstd_group_size=2, **SMALL)
  what = f'discriminator ({architecture}, {"conditional" if c_dim else "unconditional"})'
  official_labels, reference_labels = _label_inputs(torch, labels, c_dim)
  outputs = {}
  for name, module in (('official', them), ('reference', mine)):
    ref.load_flax(module, variables)
    module.eval()
    t_x = ref.tensor(x.transpose(0, 3, 1, 2)).requires_grad_(True)
    c = official_labels if name == 'official' else reference_labels
    out = module(t_x, c)
    (out * ref.tensor(cot)).sum().backward()
    outputs[name] = (out.detach().numpy(), t_x.grad.numpy().transpose(0, 2, 3, 1))
  report.allclose(f'{what}: gan_jax scores', scores, outputs['official'][0])
  report.grads(f'{what}: gan_jax', ref.grads_in_torch_layout(them, grads))
  scale = np.abs(outputs['official'][1]).max()
  report.line(f"{what}: gan_jax's gradient of the input",
              float(np.abs(x_grad - outputs['official'][1]).max() / scale), GRAD_TOL)
  report.allclose(f'{what}: tests/stylegan2_torch.py scores', outputs['reference'][0],
                  outputs['official'][0])
  report.line(f"{what}: tests/stylegan2_torch.py's gradient of the input",
              float(np.abs(outputs['reference'][1] - outputs['official'][1]).max() / scale),
              GRAD_TOL)


# (what, c_dim, channel_base, D architecture, resolution, mapping layers): train.py's configs
COUNTS = [("--cfg=cifar --cond=1", CLASSES, 32768, 'orig', 32, 2),
          ('--cfg=auto, 32 px', 0, 16384, 'resnet', 32, 2),
          ('--cfg=auto, 256 px', 0, 16384, 'resnet', 256, 2),
          ('--cfg=paper256', 0, 16384, 'resnet', 256, 8)]


def check_counts(report, official, ref):
  for what, c_dim, base, architecture, res, mapping in COUNTS:
    z, x = jnp.zeros((2, 512)), jnp.zeros((2, res, res, 3))
    labels = jnp.zeros((2,), jnp.int32) if c_dim else None
    arch = dict(channel_base=base, channel_max=512)
    gen = networks.GeneratorNetwork(res, 3, c_dim, 512, 512, mapping_layers=mapping, **arch)
    critic = networks.DiscriminatorNetwork(res, c_dim, architecture, **arch)
    ours = (ref.flax_parameter_count(gen, z, labels),
            ref.flax_parameter_count(critic, x, labels))
    g = official.Generator(512, c_dim, 512, res, 3, mapping_kwargs=dict(num_layers=mapping),
                           synthesis_kwargs=arch)
    d = official.Discriminator(c_dim, res, 3, architecture=architecture, **arch)
    theirs = (ref.parameter_count(g), ref.parameter_count(d))
    print(f'parameters, {what}: G {ours[0]:,} D {ours[1]:,} (official G {theirs[0]:,} '
          f'D {theirs[1]:,})')
    report.line(f'parameters, {what}: G and D, |gan_jax - official|',
                abs(ours[0] - theirs[0]) + abs(ours[1] - theirs[1]), 0)


def _official_calls(draws, channels: int):
  """The official forward's torch.rand / torch.randn calls for 'bgc', in its order, each with
  the value that makes the official compute `draws` (numpy, one example's or a batch's rows):
  every gate 0 (the transform fires; a draw at its identity gives the identity)."""
  d = {k: np.asarray(v, np.float64) for k, v in draws.items()}
  b = d['xflip'].shape[0]
  gate = lambda *shape: ('rand', np.zeros((b,) + shape))
  s = ada.Spec()
  calls = [('rand', (d['xflip'] + 0.5) / 2), gate(),
           ('rand', (d['rotate90'] + 0.5) / 4), gate(),
           ('rand', (d['xint'] / s.xint_max + 1) / 2), gate(1),
           ('randn', np.log2(d['scale']) / s.scale_std), gate(),
           ('rand', (d['rotate_pre'] / (np.pi * s.rotate_max) + 1) / 2), gate(),
           ('randn', np.log2(d['aniso']) / s.aniso_std), gate(),
           ('rand', (d['rotate_post'] / (np.pi * s.rotate_max) + 1) / 2), gate(),
           ('randn', d['xfrac'] / s.xfrac_std), gate(1),
           ('randn', d['brightness'] / s.brightness_std), gate(),
           ('randn', np.log2(d['contrast']) / s.contrast_std), gate(),
           ('rand', ((d['lumaflip'] + 0.5) / 2).reshape(b, 1, 1)), gate(1, 1)]
  if channels > 1:
    calls += [('rand', (d['hue'] / (np.pi * s.hue_max) + 1) / 2), gate(),
              ('randn', (np.log2(d['saturation']) / s.saturation_std).reshape(b, 1, 1)),
              gate(1, 1)]
  return calls


@contextlib.contextmanager
def _answering(torch, calls):
  """torch.rand and torch.randn answer `calls` in order (checking the function and shape)."""
  queue = list(calls)

  def fake(kind):
    def call(size, **_):
      expected, value = queue.pop(0)
      assert expected == kind and tuple(size) == value.shape, (kind, size, expected, value.shape)
      return torch.from_numpy(value.astype(np.float32))
    return call
  with mock.patch.object(torch, 'rand', fake('rand')), \
       mock.patch.object(torch, 'randn', fake('randn')):
    yield
  assert not queue, f'{len(queue)} draws not taken'


def check_ada(report, augment, ada_torch, torch):
  spec = ada.PIPELINES['bgc']
  multipliers = {k: v for k, v in dataclasses.asdict(spec).items()
                 if k in ada.GEOMETRIC + ada.COLOR}
  for p in (0.5, 1.0):
    for seed, shape in enumerate([(6, 16, 16, 3), (6, 32, 32, 1), (6, 16, 24, 3)]):
      b, _, _, channels = shape
      images = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
      draws = {k: np.asarray(v) for k, v in
               jax.jit(ada.draw, static_argnums=(2, 3))(jax.random.PRNGKey(seed), p, spec,
                                                         b).items()}
      cot = _normal(10 + seed, shape)
      ours, vjp = jax.vjp(lambda x: ada.apply(x, draws, spec), jnp.asarray(images))
      our_grad = vjp(jnp.asarray(cot))[0]
      pipe = augment.AugmentPipe(**multipliers)
      pipe.p.copy_(torch.tensor(1.0))   # every gate 0 fires; the draws hold the identities

      def official(rows, pipe=pipe, images=images, draws=draws, cot=cot, channels=channels):
        x = torch.from_numpy(images[rows].transpose(0, 3, 1, 2).copy()).requires_grad_(True)
        with _answering(torch, _official_calls({k: v[rows] for k, v in draws.items()},
                                               channels)):
          out = pipe(x)
        (out * torch.from_numpy(cot[rows].transpose(0, 3, 1, 2).copy())).sum().backward()
        return _nhwc(out), x.grad.numpy().transpose(0, 2, 3, 1)

      one_at_a_time = [official(slice(i, i + 1)) for i in range(b)]
      theirs = np.concatenate([o for o, _ in one_at_a_time])
      their_grad = np.concatenate([g for _, g in one_at_a_time])
      what = f'ADA bgc p {p} {"x".join(map(str, shape[1:]))}'
      moved = int(np.sum(np.abs(theirs - images).max(axis=(1, 2, 3)) > 0.1))
      print(f'{what}: the official pipeline changed {moved} of {b} examples')
      if p == 1:   # every transform fires: no example comes out as it went in
        report.line(f'{what}: examples left unchanged at p 1', b - moved, 0)
      report.line(f'{what}: gan_jax images, one example at a time',
                  float(np.abs(np.asarray(ours) - theirs).max()), ADA_ATOL)
      report.line(f'{what}: gan_jax gradient of the images',
                  float(np.abs(np.asarray(our_grad) - their_grad).max()
                        / np.abs(their_grad).max()), ADA_GRAD_TOL)
      whole, whole_grad = official(slice(0, b))
      x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
      mine = ada_torch.augment(x, {k: torch.from_numpy(np.array(v)) for k, v in draws.items()},
                               dataclasses.asdict(spec))
      (mine * torch.from_numpy(cot.transpose(0, 3, 1, 2).copy())).sum().backward()
      report.line(f'{what}: tests/ada_torch.py images, whole batch',
                  float(np.abs(_nhwc(mine) - whole).max()), ADA_ATOL)
      report.line(f'{what}: tests/ada_torch.py gradient of the images',
                  float(np.abs(x.grad.numpy().transpose(0, 2, 3, 1) - whole_grad).max()
                        / np.abs(whole_grad).max()), ADA_GRAD_TOL)


def main(argv):
  del argv
  import torch
  torch.set_num_threads(1)
  sys.path.insert(0, os.path.abspath(_OFFICIAL.value))
  from training import augment as official_augment
  from training import networks as official_networks
  import ada_torch
  import stylegan2_torch as ref
  report = Report()
  if 'networks' in _PARTS.value:
    for c_dim, fused in ((CLASSES, True), (0, False)):
      check_generator(report, official_networks, ref, torch, c_dim, fused)
    for c_dim, architecture in ((CLASSES, 'resnet'), (0, 'orig')):
      check_discriminator(report, official_networks, ref, torch, c_dim, architecture)
  if 'counts' in _PARTS.value:
    check_counts(report, official_networks, ref)
  if 'ada' in _PARTS.value:
    check_ada(report, official_augment, ada_torch, torch)
  print('all within tolerance' if not report.failed else 'SOME OVER TOLERANCE')
  sys.exit(1 if report.failed else 0)


if __name__ == '__main__':
  app.run(main)
