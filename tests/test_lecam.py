"""LeCam regularisation (loss.lecam_weight): the penalty on known critic outputs, the anchors'
moving average and its order against the penalty (StudioGAN's and the authors' code), the
anchors in the state (saved, resumed exactly, one pair per member), and checkpoints of the format
before them. (1 vs 8 devices, jit and pmap: test_multidevice.py's toolkit run.)"""

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gan_jax import checkpoints, input_pipeline, losses, migration, trainer, updates
from gan_jax.stepper import Stepper

REAL, FAKE = jnp.array([2.0, 0.5, -1.0]), jnp.array([-2.0, 0.0, 1.0])
ANCHORS = {'real': jnp.float32(0.25), 'fake': jnp.float32(-0.5)}


def test_the_penalty_on_known_outputs_one_and_two_sided():
  # D(x) - alpha_F = 2.5, 1, -0.5; alpha_R - D(G(z)) = 2.25, 0.25, -0.75
  one_sided = (2.5 ** 2 + 1) / 3 + (2.25 ** 2 + 0.25 ** 2) / 3   # relu drops the negatives
  two_sided = (2.5 ** 2 + 1 + 0.25) / 3 + (2.25 ** 2 + 0.25 ** 2 + 0.75 ** 2) / 3
  np.testing.assert_allclose(losses.lecam_penalty(REAL, FAKE, ANCHORS), one_sided, rtol=1e-6)
  np.testing.assert_allclose(losses.lecam_penalty(REAL, FAKE, ANCHORS, 'two_sided'), two_sided,
                             rtol=1e-6)
  # Gradients flow into the outputs, not into the anchors' (constant) values.
  grad = jax.grad(lambda r: losses.lecam_penalty(r, FAKE, ANCHORS))(REAL)
  np.testing.assert_allclose(grad, [2 * 2.5 / 3, 2 * 1.0 / 3, 0.0], rtol=1e-6)


def test_the_anchors_copy_until_the_start_then_average():
  decay, start = 0.9, 2
  means = [(float(k), -float(k * k)) for k in range(6)]    # (real, fake) batch means per update
  anchors = {'real': jnp.float32(0.0), 'fake': jnp.float32(0.0)}
  for step, (real, fake) in enumerate(means):
    anchors = losses.lecam_anchors(anchors, jnp.full((4,), real), jnp.full((4,), fake), decay,
                                   copy=jnp.asarray(step) < start)
  for side, index in (('real', 0), ('fake', 1)):
    # The updates before `start` copy (the last copy: update start - 1), then decay.
    expected = decay ** (6 - start) * means[start - 1][index] + (1 - decay) * sum(
        decay ** (5 - i) * means[i][index] for i in range(start, 6))
    np.testing.assert_allclose(anchors[side], expected, rtol=1e-6)


def _setup(**overrides):
  config = load_config('dcgan.py:digits,runlocal,mlp', loss__adversarial='hinge',
                       **overrides)
  data = input_pipeline.load(config.dataset)
  return config, data, Stepper(config, data.image_shape, data.num_classes)


def test_each_critic_update_moves_the_anchors_first_then_takes_the_penalty():
  """The anchors take the update's mean outputs before the penalty is taken against them, as
  StudioGAN (src/worker.py) and the authors' code (losses.loss_hinge_dis, then lecam_reg) do;
  the critic's loss gains lambda times it, from the generator step after lecam_start_step."""
  config, data, stepper = _setup(loss__lecam_weight=0.3, loss__lecam_decay=0.5,
                                 loss__lecam_start_step=0)
  _, _, plain = _setup()
  state = stepper.init()
  batch = jax.tree.map(lambda x: x[0], input_pipeline.BatchStream(
      data, config.batch_size, config.seed).next(1))
  before = {'real': jnp.float32(0.4), 'fake': jnp.float32(-0.2)}
  seen, penalty_fn = [], losses.lecam_penalty

  def record(real, fake, anchors, form):   # what the penalty is taken of, as numbers
    jax.debug.callback(lambda *args: seen.append(args + (form,)), real, fake, anchors)
    return penalty_fn(real, fake, anchors, form)
  key = jax.random.PRNGKey(4)
  for step in (0, 1):
    with mock.patch.object(updates.losses, 'lecam_penalty', record):
      _, metrics = updates.critic_update(stepper.gan, state.gen, state.critic, batch, key,
                                         lecam=before, step=jnp.asarray(step))
    real, fake, anchors, form = seen[-1]
    assert form == 'one_sided'
    # hinge: d_real and d_fake are the mean outputs
    np.testing.assert_allclose(jnp.mean(real), metrics['d_real'], rtol=1e-6)
    # lecam_start_step 0: every update averages; the penalty acts from step 1
    for side, mean in (('real', metrics['d_real']), ('fake', metrics['d_fake'])):
      expected = 0.5 * before[side] + 0.5 * mean
      np.testing.assert_allclose(anchors[side], expected, rtol=1e-6)
      np.testing.assert_allclose(metrics[f'lecam_alpha_{side}'], expected, rtol=1e-6)
    penalty = float(penalty_fn(real, fake, anchors))
    assert penalty > 0
    np.testing.assert_allclose(metrics['lecam_penalty'], penalty if step > 0 else 0.0,
                               rtol=1e-6)
    without = updates.critic_update(plain.gan, state.gen, state.critic, batch, key)[1]
    np.testing.assert_allclose(metrics['critic_loss'],
                               without['critic_loss'] + (0.3 * penalty if step else 0.0),
                               rtol=1e-5)


def test_training_keeps_the_anchors_in_the_state_and_logs_them():
  config, data, stepper = _setup(loss__lecam_weight=0.3, loss__lecam_decay=0.5,
                                 loss__lecam_start_step=2)
  state = stepper.init()
  assert set(state.lecam) == {'real', 'fake'}
  stream = input_pipeline.BatchStream(data, config.batch_size, config.seed)
  logged = []
  for _ in range(4):   # n_critic 1: each step's d_real, d_fake are its one update's means
    state, metrics, health = stepper.train(state, [stream.next(1)])
    logged.append({k: float(v[0]) for k, v in metrics.items()})
    assert bool(health['lecam'][0])
  for side in ('real', 'fake'):
    means = [m[f'd_{side}'] for m in logged]
    expected = 0.5 ** 2 * means[1] + 0.5 * (0.5 * means[2] + means[3])  # copies at steps 0, 1
    np.testing.assert_allclose(state.lecam[side], expected, rtol=1e-5)
    np.testing.assert_allclose(logged[-1][f'lecam_alpha_{side}'], state.lecam[side], rtol=1e-6)
  # The penalty acts from the step after lecam_start_step.
  assert [m['lecam_penalty'] > 0 for m in logged] == [False, False, False, True]
  assert len(set(round(m['d_real'], 6) for m in logged)) == 4


def test_off_by_default_with_no_anchors_in_the_state():
  config, _, stepper = _setup()
  assert config.loss.lecam_weight == 0 and stepper.init().lecam == {}
  assert stepper.gan.lecam_weight == 0


# num_seeds 1 is slow (24 s; CI runs it): 2 members also resume their own anchors exactly.
@pytest.mark.parametrize('num_seeds', [pytest.param(1, marks=pytest.mark.slow), 2])
def test_resume_with_lecam_is_exact(num_seeds, tmp_path):
  """A run stopped at step 3 and resumed to 6 equals one never stopped, anchors included; with
  num_seeds 2 each member keeps its own anchors."""
  spec = 'dcgan.py:digits,runlocal,mlp'
  common = dict(seed=7, num_seeds=num_seeds, log_every=3, checkpoint_every=3,
                keep_checkpoints=5, sample_every=0, loss__lecam_weight=0.3,
                loss__lecam_start_step=1)

  def train(workdir, steps):
    config = load_config(spec, num_steps=steps, **common)
    data = input_pipeline.load(config.dataset)
    stepper = Stepper(config, data.image_shape, data.num_classes)
    return trainer.train(config, str(workdir), stepper, data), stepper

  straight, stepper = train(tmp_path / 'straight', 6)
  train(tmp_path / 'resumed', 3)
  mngr = checkpoints.manager(str(tmp_path / 'resumed'), 1, read_only=True)
  half, _ = checkpoints.restore(mngr, stepper.abstract_state())
  mngr.close()
  assert int(half.step) == 3 and half.lecam['real'].shape == (() if num_seeds == 1 else (2,))
  resumed, _ = train(tmp_path / 'resumed', 6)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(straight.lecam['real'] - half.lecam['real']))) > 0
  if num_seeds > 1:
    assert float(straight.lecam['real'][0]) != float(straight.lecam['real'][1])


def test_a_checkpoint_of_the_format_before_the_anchors_restores_only_without_them():
  _, _, stepper = _setup()
  target = stepper.abstract_state()
  assert migration.can_hold(target, 3) and migration.FORMAT == 5
  _, _, with_lecam = _setup(loss__lecam_weight=0.3)
  assert not migration.can_hold(with_lecam.abstract_state(), 3)
  assert migration.can_hold(with_lecam.abstract_state(), 4)
  # Format 3's layout is today's state without the anchors, and reads back as today's.
  layout = migration.layout(target, 3)
  assert 'lecam' not in layout and set(layout) == {'step', 'key', 'gen', 'critic', 'skipped',
                                                   'ema'}
  assert migration.upgrade(layout, 3).lecam == {}
