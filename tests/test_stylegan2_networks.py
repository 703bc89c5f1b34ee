"""gan_jax/models/stylegan2/networks.py computes what stylegan2-ada-pytorch's training/networks.py
computes: tests/stylegan2_torch.py's networks (which equal the official modules on the same
weights, output for output: experiments/official_check.py, from a checkout of the official
code) loaded with our random weights, on the same inputs, at 32x32 with small widths
(channel_base 512, channel_max 32: 32 channels up to 16x16, 16 at 32x32).

Checked: the mapping network (conditional and not, its w_avg update in training and truncation
with a cutoff), the whole generator (const noise with random strengths, fused and non-fused
modulated convs, truncation, conv_clamp that bites), the whole discriminator ('resnet' and
'orig', conditional through cmap and not), outputs and every parameter's gradient; the noise
modes; the parameter counts at the official CIFAR-10 and 'auto' configurations. Float32: outputs
agree within atol 2e-5 + rtol 1e-4 (images of order 1, scores of order 1-10), gradients within
1e-4 of the largest of the same parameter (sums over thousands of terms), the noise strengths'
(scalars: one sum over every output of their layer, with cancellation) within 1e-3 of theirs.
The R1 penalty |grad_x D|^2 (second order, at 16x16) agrees within rtol 1e-4, its parameter
gradients within 1e-3 of the largest of the same parameter (the biases' are small sums of
terms through minibatch std's nonlinearity, with cancellation). Style mixing and the path
length penalty (gan_jax/styles.py, at 16x16, StyleGAN2Loss's run_G and Gpl phase given the same
random draws): the mixed ws, images, path lengths, pl_mean and penalty within atol 2e-5 + rtol
1e-4, the penalty's parameter gradients (second order through G) within 1e-4 of the largest of
the same parameter, the noise strengths' within 5e-3 (one of them is 400 times smaller than the
others, a sum with cancellation: 9e-4 of it seen).
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reference_import
from gan_jax import styles
from gan_jax.models.stylegan2 import networks

torch = reference_import('torch')   # CI installs it: missing there, the run fails
import stylegan2_torch as ref  # pylint: disable=g-import-not-at-top,wrong-import-position

ATOL, RTOL, GRAD_TOL, NOISE_GRAD_TOL, R1_GRAD_TOL = 2e-5, 1e-4, 1e-4, 1e-3, 1e-3
PL_NOISE_GRAD_TOL = 5e-3
SMALL = dict(channel_base=512, channel_max=32, conv_clamp=1.0)
Z, W, CLASSES, BATCH = 16, 24, 10, 4
# (G, D) parameters at 256x256x3, unconditional, channel_base 16384, by mapping layers
COUNTS_256 = {2: (23_191_522, 24_001_089), 8: (24_767_458, 24_001_089)}


@jax.jit
def _randomised(variables, key):
  """`variables` with biases and w_avg drawn at random (initially 0 or 1)."""
  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    noise = jax.random.normal(jax.random.fold_in(key, zlib.crc32(name.encode())), leaf.shape)
    if name.endswith("['bias']") or name.endswith("['w_avg']"):
      return leaf + 0.3 * noise
    return leaf
  return jax.tree_util.tree_map_with_path(draw, variables)


def _close(ours, theirs, atol=ATOL, rtol=RTOL):
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=atol, rtol=rtol)


def _grads_close(t_module, grads, grad_tol=GRAD_TOL, noise_grad_tol=NOISE_GRAD_TOL):
  pairs = ref.grads_in_torch_layout(t_module, grads)
  assert pairs
  for name, (ours, theirs) in pairs.items():
    scale = max(float(np.abs(theirs).max()), 1e-12)
    # a noise strength's gradient is one sum over all B x H x W x C outputs of its layer
    tol = noise_grad_tol if name.endswith('noise_strength') else grad_tol
    np.testing.assert_allclose(ours, theirs, atol=tol * scale, rtol=0, err_msg=name)


def _normal(seed, shape):
  """N(0, 1) draws (numpy's: jax.random compiles anew for every shape, ~3 s here)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _inputs():
  z = _normal(1, (BATCH, Z))
  labels = jnp.array([3, 0, 9, 3])
  x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (BATCH, 32, 32, 3)), jnp.float32)
  return z, labels, x


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def test_mapping_network_tracks_w_avg_and_truncates_as_the_official():
  z, labels, _ = _inputs()
  mapping = networks.MappingNetwork(Z, CLASSES, W, num_ws=6, num_layers=8)
  variables = _randomised(mapping.init(jax.random.PRNGKey(0), z, labels), jax.random.PRNGKey(3))
  ws, state = mapping.apply(variables, z, labels, train=True, mutable=[networks.STATE])
  t_mapping = ref.MappingNetwork(Z, CLASSES, W, 6, 8)
  assert ref.load_flax(t_mapping, variables) == 2 + 16 + 1   # embed, fc0-7, w_avg
  t_mapping.train()
  t_ws = t_mapping(ref.tensor(z), torch.tensor(np.asarray(labels)).long())
  _close(ws, t_ws.detach().numpy())
  _close(state[networks.STATE]['w_avg'], t_mapping.w_avg.numpy(), atol=1e-6)
  moved = state[networks.STATE]['w_avg'] - variables[networks.STATE]['w_avg']
  assert float(jnp.abs(moved).max()) > 1e-4
  # truncation toward the (new) w_avg, the first 2 of 6 ws only
  truncated = mapping.apply({**variables, **state}, z, labels, truncation_psi=0.5,
                            truncation_cutoff=2)
  t_mapping.eval()
  with torch.no_grad():
    t_truncated = t_mapping(ref.tensor(z), torch.tensor(np.asarray(labels)).long(), 0.5, 2)
  _close(truncated, t_truncated.numpy())
  _close(truncated[:, 2:], ws[:, 2:])
  assert float(jnp.abs(truncated[:, :2] - ws[:, :2]).max()) > 0.01


def _generator(c_dim):
  gen = networks.GeneratorNetwork(32, 3, c_dim, Z, W, mapping_layers=2, **SMALL)
  t_gen = ref.Generator(Z, c_dim, W, 32, 3, mapping_layers=2, **SMALL)
  return gen, t_gen


@pytest.mark.parametrize('c_dim,fused', [(CLASSES, True), (0, False)])
def test_generator_is_the_officials(c_dim, fused):
  z, labels, _ = _inputs()
  labels = labels if c_dim else None
  gen, t_gen = _generator(c_dim)
  variables = ref.random_variables(gen, z, labels)
  params, state = variables['params'], variables[networks.STATE]
  cot = _normal(5, (BATCH, 32, 32, 3))

  @jax.jit
  def run(params):
    def f(p):
      return gen.apply({'params': p, networks.STATE: state}, z, labels, truncation_psi=0.8,
                       noise_mode='const', fused_modconv=fused)
    images, vjp = jax.vjp(f, params)
    return images, vjp(cot)[0]

  images, grads = run(params)
  ref.load_flax(t_gen, variables)
  t_gen.eval()   # (in training mode the official mapping updates w_avg before truncating)
  t_labels = torch.tensor(np.asarray(labels)).long() if c_dim else None
  t_images = t_gen(ref.tensor(z), t_labels, truncation_psi=0.8, noise_mode='const',
                   fused_modconv=fused)
  (t_images * ref.tensor(np.asarray(cot).transpose(0, 3, 1, 2))).sum().backward()
  _close(images, _nhwc(t_images))
  _grads_close(t_gen, grads)
  assert float(jnp.std(images)) > 0.1
  assert float(jnp.abs(grads['synthesis']['b8']['conv0']['noise_strength'])) > 0


def test_noise_modes():
  z, _, _ = _inputs()
  gen, _ = _generator(0)
  variables = ref.random_variables(gen, z)
  run = jax.jit(gen.apply, static_argnames='noise_mode')
  key = jax.random.PRNGKey(7)
  a = run(variables, z, noise_mode='random', rngs={'noise': key})
  _close(a, run(variables, z, noise_mode='random', rngs={'noise': key}), atol=0, rtol=0)
  b = run(variables, z, noise_mode='random', rngs={'noise': jax.random.PRNGKey(8)})
  assert float(jnp.abs(a - b).max()) > 1e-3
  zero = jax.tree_util.tree_map_with_path(
      lambda p, v: v * 0 if 'noise_strength' in jax.tree_util.keystr(p) else v, variables)
  none = run(variables, z, noise_mode='none')
  _close(none, run(zero, z, noise_mode='const'), atol=1e-6)
  assert float(jnp.abs(none - run(variables, z, noise_mode='const')).max()) > 1e-3


@pytest.mark.parametrize('c_dim,architecture', [(CLASSES, 'resnet'), (0, 'orig')])
def test_discriminator_is_the_officials(c_dim, architecture):
  _, labels, x = _inputs()
  labels = labels if c_dim else None
  critic = networks.DiscriminatorNetwork(32, c_dim, architecture, mbstd_group_size=2, **SMALL)
  variables = ref.random_variables(critic, x, labels, seed=1)
  cot = _normal(7, (BATCH, 1))

  @jax.jit
  def run(params, x):
    scores, vjp = jax.vjp(lambda p, x: critic.apply({'params': p}, x, labels), params, x)
    return scores, vjp(cot)

  scores, (grads, x_grad) = run(variables['params'], x)
  t_critic = ref.Discriminator(c_dim, 32, 3, architecture, mbstd_group_size=2, **SMALL)
  ref.load_flax(t_critic, variables)
  t_critic.eval()
  t_x = ref.tensor(np.asarray(x).transpose(0, 3, 1, 2)).requires_grad_(True)
  t_labels = torch.tensor(np.asarray(labels)).long() if c_dim else None
  t_scores = t_critic(t_x, t_labels)
  (t_scores * ref.tensor(cot)).sum().backward()
  _close(scores, t_scores.detach().numpy())
  _grads_close(t_critic, grads)
  t_x_grad = t_x.grad.numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(x_grad, t_x_grad, atol=GRAD_TOL * np.abs(t_x_grad).max(), rtol=0)
  assert float(jnp.std(scores)) > 1e-3


@pytest.mark.parametrize('c_dim,channel_base,architecture,res,mapping,counts', [
    # stylegan2-ada-pytorch's train.py --cfg=cifar --cond=1 (32x32: 512 channels everywhere,
    # mapping 2 layers, D 'orig'); its Generator and Discriminator count these
    (CLASSES, 32768, 'orig', 32, 2, (20_215_315, 23_089_664)),
    (CLASSES, 32768, 'resnet', 32, 2, (20_215_315, 23_876_096)),
    # --cfg=auto at 32x32, unconditional (channel_base 16384: still 512 channels)
    (0, 16384, 'resnet', 32, 2, (19_947_539, 21_507_073)),
    # --cfg=auto at 256x256 (512 channels to 32 px, then 256, 128, 64) and --cfg=paper256
    # (the same widths, mapping 8 layers)
    (0, 16384, 'resnet', 256, 2, COUNTS_256[2]),
    (0, 16384, 'resnet', 256, 8, COUNTS_256[8]),
])
def test_parameter_counts_are_the_officials(c_dim, channel_base, architecture, res, mapping,
                                            counts):
  z, labels, x = jnp.zeros((2, 512)), jnp.zeros((2,), jnp.int32), jnp.zeros((2, res, res, 3))
  labels = labels if c_dim else None
  arch = dict(channel_base=channel_base, channel_max=512)
  gen = networks.GeneratorNetwork(res, 3, c_dim, 512, 512, mapping_layers=mapping, **arch)
  critic = networks.DiscriminatorNetwork(res, c_dim, architecture, **arch)
  ours = (ref.flax_parameter_count(gen, z, labels),
          ref.flax_parameter_count(critic, x, labels))
  with torch.device('meta'):
    theirs = (ref.parameter_count(ref.Generator(512, c_dim, 512, res, 3, mapping, **arch)),
              ref.parameter_count(ref.Discriminator(c_dim, res, 3, architecture, **arch)))
  assert ours == theirs == counts


def test_a_training_forward_updates_w_avg_alone():
  """In training mode `map` changes w_avg in the 'batch_stats' collection the trainer carries
  (and leaves it with skip_w_avg_update); `synthesize` (non-fused modconv, random noise from
  the 'noise' stream) leaves that collection as it is."""
  z, labels, _ = _inputs()
  gen, _ = _generator(CLASSES)
  variables = ref.random_variables(gen, z, labels)

  @jax.jit
  def halves(variables):
    mapped = gen.apply(variables, z, labels, train=True, method='map', mutable=[networks.STATE])
    skipped = gen.apply(variables, z, labels, train=True, skip_w_avg_update=True, method='map',
                        mutable=[networks.STATE])
    images, synthesised = gen.apply(variables, mapped[0], train=True, method='synthesize',
                                    mutable=[networks.STATE],
                                    rngs={'noise': jax.random.PRNGKey(0)})
    return mapped, skipped[1], synthesised, images

  (ws, updated), skipped, synthesised, images = halves(variables)
  assert ws.shape == (BATCH, gen.num_ws, W) and images.shape == (BATCH, 32, 32, 3)
  old = variables[networks.STATE]
  moved = updated[networks.STATE]['mapping']['w_avg'] - old['mapping']['w_avg']
  _close(moved, 0.005 * (ws[:, 0].mean(axis=0) - old['mapping']['w_avg']), atol=1e-6)
  assert float(jnp.abs(moved).max()) > 1e-3
  _close(skipped[networks.STATE]['mapping']['w_avg'], old['mapping']['w_avg'], atol=0, rtol=0)
  same = jax.tree.map(lambda a, b: bool(jnp.all(a == b)), synthesised[networks.STATE], old)
  assert all(jax.tree.leaves(same))


def test_r1_penalty_gradients_are_the_officials():
  """The R1 penalty's parameter gradients (second order through every op of D: upfirdn2d,
  strided and 1x1 convs, minibatch std, clamps) equal torch's double backward."""
  _, labels, x = _inputs()
  x = x[:, :16, :16]
  critic = networks.DiscriminatorNetwork(16, CLASSES, 'resnet', mbstd_group_size=2, **SMALL)
  variables = ref.random_variables(critic, x, labels, seed=2)

  @jax.jit
  def r1_grads(params):
    def penalty(p):
      x_grad = jax.grad(lambda x: jnp.sum(critic.apply({'params': p}, x, labels)))(x)
      return jnp.sum(jnp.square(x_grad))
    return jax.value_and_grad(penalty)(params)

  value, grads = r1_grads(variables['params'])
  t_critic = ref.Discriminator(CLASSES, 16, 3, 'resnet', mbstd_group_size=2, **SMALL)
  ref.load_flax(t_critic, variables)
  t_x = ref.tensor(np.asarray(x).transpose(0, 3, 1, 2)).requires_grad_(True)
  scores = t_critic(t_x, torch.tensor(np.asarray(labels)).long())
  x_grad, = torch.autograd.grad(scores.sum(), t_x, create_graph=True)
  t_value = x_grad.square().sum()
  t_value.backward()
  _close(value, float(t_value.detach()), rtol=1e-4)
  assert float(value) > 0
  _grads_close(t_critic, grads, R1_GRAD_TOL)


def test_style_mixing_and_the_path_length_penalty_are_the_officials():
  """StyleGAN2Loss's Gpl phase (run_G mixing from a cutoff of 2 of 6 ws, the lengths of
  J^T y, pl_mean's lerp at rate 0.01 from 0.4, the penalty) with its random draws given, against
  styles.mix, path_lengths, pl_mean_after and pl_penalty on G's map and synthesize halves."""
  z, labels, _ = _inputs()
  other_z, noise = _normal(8, (BATCH, Z)), _normal(9, (BATCH, 16, 16, 3))
  cutoff, pl_mean, decay = 2, 0.4, 0.01
  gen = networks.GeneratorNetwork(16, 3, CLASSES, Z, W, mapping_layers=2, **SMALL)
  variables = ref.random_variables(gen, z, labels, seed=3)
  state = variables[networks.STATE]

  @jax.jit
  def run(params):
    def penalty(p):
      v = {'params': p, networks.STATE: state}
      mapped = lambda z, **kw: gen.apply(v, z, labels, train=True, method='map',
                                         mutable=[networks.STATE], **kw)[0]
      plain = mapped(z)
      ws = styles.mix(plain, mapped(other_z, skip_w_avg_update=True), cutoff)
      synthesize = lambda ws: gen.apply(v, ws, train=True, noise_mode='const',
                                        method='synthesize')
      images, lengths = styles.path_lengths(synthesize, ws, noise)
      new_mean = styles.pl_mean_after(pl_mean, jnp.mean(lengths), decay)
      return styles.pl_penalty(lengths, new_mean), (plain, ws, images, lengths, new_mean)
    return jax.value_and_grad(penalty, has_aux=True)(params)

  (value, (plain, ws, images, lengths, new_mean)), grads = run(variables['params'])
  t_gen = ref.Generator(Z, CLASSES, W, 16, 3, mapping_layers=2, **SMALL)
  ref.load_flax(t_gen, variables)
  t_gen.train()
  t_value, t_lengths, t_mean = ref.path_length_penalty(
      t_gen, ref.tensor(z), torch.tensor(np.asarray(labels)).long(), ref.tensor(other_z),
      cutoff, ref.tensor(np.asarray(noise).transpose(0, 3, 1, 2)), torch.tensor(pl_mean),
      decay, noise_mode='const', fused_modconv=False)
  t_value.backward()
  with torch.no_grad():
    t_images, t_ws = ref.run_G(t_gen, ref.tensor(z), torch.tensor(np.asarray(labels)).long(),
                               ref.tensor(other_z), cutoff, noise_mode='const',
                               fused_modconv=False)
  _close(ws, t_ws.numpy())
  _close(images, _nhwc(t_images))
  _close(lengths, t_lengths.detach().numpy())
  _close(new_mean, float(t_mean))
  _close(value, float(t_value.detach()))
  _grads_close(t_gen, grads, noise_grad_tol=PL_NOISE_GRAD_TOL)
  # the mix: ws before the cutoff are z's, from it those of the other z
  _close(ws[:, :cutoff], plain[:, :cutoff], atol=1e-6)   # (XLA's fusions: round-off apart)
  assert float(jnp.abs(ws[:, cutoff:] - plain[:, cutoff:]).min()) > 0
  assert float(value) > 0 and abs(float(new_mean) - pl_mean) > 1e-4
