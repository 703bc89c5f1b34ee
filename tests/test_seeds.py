"""Many seeds at once (config.num_seeds): each member is the separate run of its seed, resume is
exact, a non-finite member is named (or skipped alone), sampling and evaluation are per member,
and bad values are refused (num_seeds' own in test_train.py's refusals)."""

import json
from unittest import mock

import jax
import numpy as np
import pytest

from conftest import load_config, run_main
from gan_jax import checkpoints, input_pipeline, modes, seeds, updates, trainer
from gan_jax.errors import ConfigError, NonFiniteError
from gan_jax.stepper import Stepper

SEED = 7   # member k has seed 7 + k


def _assert_close(stacked, separate, tolerance):
  """Leafwise max |difference| relative to the leaf's scale (at least 1) below `tolerance`."""
  for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(separate), strict=True):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(1.0, float(np.max(np.abs(b))))
    assert float(np.max(np.abs(a - b))) <= tolerance * scale, (a.shape, np.max(np.abs(a - b)))


def _train(spec, workdir, **overrides):
  config = load_config(spec, sample_every=0, **overrides)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  return trainer.train(config, str(workdir), stepper, data), stepper


# Batch norm (dcgan, conv), weight clipping and WGAN's boosted n_critic schedule (wgan), the
# gradient penalty (wgan_gp) and labels (acgan); steps_per_call auto gives calls of 2 and 1.
# seed_mapping auto runs conv members in a loop on CPU, MLP members under vmap.
# The conv members run in a loop, one program each: two of them (the slowest case to compile).
# The conv and ACGAN cases are slow (over a minute on 2 cores; CI runs them).
@pytest.mark.parametrize('spec,mapping,count', [
    pytest.param('dcgan.py:digits,runlocal', 'auto', 2, marks=pytest.mark.slow),
    ('wgan.py:digits,runlocal,mlp', 'auto', 3), ('wgan_gp.py:digits,runlocal,mlp', 'loop', 3),
    pytest.param('acgan.py:digits,runlocal,mlp', 'auto', 3, marks=pytest.mark.slow)])
def test_members_equal_separate_runs_of_their_seeds(spec, mapping, count, tmp_path):
  overrides = dict(num_steps=5, log_every=5, checkpoint_every=0)
  stacked, stepper = _train(spec, tmp_path / 'many', seed=SEED, num_seeds=count,
                            seed_mapping=mapping, **overrides)
  assert stepper.mapping == seeds.mapping(load_config(spec, seed_mapping=mapping), 1, 'cpu')
  member_seeds = list(range(SEED, SEED + count))
  assert stepper.seeds == member_seeds
  assert stacked.step.shape == () and int(stacked.step) == 5
  assert stacked.key.shape[0] == count and stacked.skipped.shape == (count,)
  separate = [_train(spec, tmp_path / f'seed{s}', seed=s, **overrides)[0] for s in member_seeds]
  _assert_close(stacked, seeds.stack(separate), 1e-4)
  for k in range(count):
    _assert_close(seeds.member(stacked, k), separate[k], 1e-4)
  # The members differ: no member is another seed's run.
  assert max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(
      jax.tree.leaves(separate[0].gen.params), jax.tree.leaves(separate[1].gen.params))) > 1e-3


def test_auto_mapping_loops_conv_members_on_cpu_alone():
  conv, mlp = load_config('dcgan.py:digits,runlocal'), load_config('dcgan.py:digits,runlocal,mlp')
  assert seeds.mapping(conv, 1, 'cpu') == 'loop'
  assert seeds.mapping(conv, 4, 'cpu') == 'vmap'   # members split over devices: side by side
  assert seeds.mapping(conv, 1, 'gpu') == 'vmap'
  assert seeds.mapping(mlp, 1, 'cpu') == 'vmap'
  mlp.seed_mapping = 'loop'
  assert seeds.mapping(mlp, 1, 'gpu') == 'loop'


def test_stacked_init_is_bitwise_each_seeds_compiled_init():
  config = load_config('dcgan.py:digits,runlocal,mlp', seed=SEED)   # (MLP: quick to compile)
  gan = updates.build_gan(config, (28, 28, 1), 10)
  stacked = jax.jit(lambda: seeds.init(gan, [7, 8], (28, 28, 1)))()
  for k, seed in enumerate((7, 8)):
    one = jax.jit(lambda seed=seed: updates.init_state(gan, seed, (28, 28, 1)))()  # as Stepper
    for a, b in zip(jax.tree.leaves(seeds.member(stacked, k)), jax.tree.leaves(one),
                    strict=True):
      np.testing.assert_array_equal(a, b)


def test_one_seed_keeps_the_unstacked_state_and_stream():
  """num_seeds 1 (the default) is one plain run: no member axis anywhere."""
  config = load_config('wgan_gp.py:digits,runlocal,mlp')
  assert config.num_seeds == 1
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  state = stepper.init()
  one = updates.init_state(stepper.gan, config.seed, data.image_shape)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(one), strict=True):
    np.testing.assert_array_equal(a, b)
  assert isinstance(seeds.stream(data, config), input_pipeline.BatchStream)
  state, metrics, health = stepper.train(state, [seeds.stream(data, config).next(5)])
  assert metrics['critic_loss'].shape == (1,) and health['metrics'].shape == (1,)


def test_member_streams_are_the_separate_runs_streams():
  config = load_config('acgan.py:digits,runlocal', seed=SEED, num_seeds=3)
  data = input_pipeline.load(config.dataset)
  many = seeds.stream(data, config, position=40)
  batch = many.next(2)
  assert batch['image'].shape == (3, 2, 16, 28, 28, 1) and batch['label'].shape == (3, 2, 16)
  for k in range(3):
    one = input_pipeline.BatchStream(data, 16, SEED + k, 40).next(2)
    np.testing.assert_array_equal(batch['image'][k], one['image'])
    np.testing.assert_array_equal(batch['label'][k], one['label'])
  assert many.position == 40 + 2 * 16


def test_resume_with_members_is_exact(tmp_path):
  spec = 'dcgan.py:digits,runlocal,mlp'
  common = dict(seed=SEED, num_seeds=2, log_every=3, checkpoint_every=3, keep_checkpoints=5)
  straight, stepper = _train(spec, tmp_path / 'straight', num_steps=6, **common)
  _train(spec, tmp_path / 'resumed', num_steps=3, **common)
  mngr = checkpoints.manager(str(tmp_path / 'resumed'), 1, read_only=True)
  half, data_state = checkpoints.restore(mngr, stepper.abstract_state())
  mngr.close()
  assert int(half.step) == 3 and half.skipped.shape == (2,)
  assert data_state['position'] == 3 * 16
  resumed, _ = _train(spec, tmp_path / 'resumed', num_steps=6, **common)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)


def _poisoned(stepper, member):
  """A fresh stacked state whose `member` has a NaN critic weight."""
  state = stepper.init()
  critic = jax.tree.map(lambda x: x.at[member].set(np.nan) if x.ndim > 1 else x,
                        state.critic.params)
  return state.replace(critic=state.critic.replace(params=critic))


def test_a_non_finite_member_is_skipped_alone(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal,mlp', seed=SEED, num_seeds=3,
                       skip_nonfinite=True)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  runs = {}
  for name, state in (('clean', stepper.init()), ('poisoned', _poisoned(stepper, 1))):
    stream = seeds.stream(data, config)
    start = jax.device_get(state)
    for _ in range(2):
      state, _, health = stepper.train(state, [stream.next(5)])
    runs[name] = (start, state, jax.device_get(health))
  start, poisoned, health = runs['poisoned']
  assert health['critic.params'].tolist() == [[True, False, True]]
  assert poisoned.skipped.tolist() == [0, 2, 0] and int(poisoned.step) == 2
  for k in (0, 2):  # the others went on as if nothing happened
    for a, b in zip(jax.tree.leaves(seeds.member(poisoned, k)),
                    jax.tree.leaves(seeds.member(runs['clean'][1], k)), strict=True):
      np.testing.assert_array_equal(a, b)
  for name in ('gen', 'critic', 'key'):  # member 1 kept its old state
    for a, b in zip(jax.tree.leaves(getattr(seeds.member(poisoned, 1), name)),
                    jax.tree.leaves(getattr(seeds.member(start, 1), name)), strict=True):
      np.testing.assert_array_equal(a, b)


def test_non_finite_values_name_the_member(tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal,mlp', seed=SEED, num_seeds=3,
                       sample_every=0)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  poisoned = _poisoned(stepper, 2)  # (donated by the run: one for each)
  with mock.patch.object(stepper, 'init', lambda: poisoned):
    with pytest.raises(NonFiniteError, match=r'step 1: non-finite train/critic_loss.*critic'
                                             r'\.params.* in member 2 \(seed 9\)'):
      trainer.train(config, str(tmp_path), stepper, data)
  config.skip_nonfinite = True
  stepper = Stepper(config, data.image_shape, data.num_classes)
  warnings = []
  poisoned = _poisoned(stepper, 2)
  with mock.patch.object(stepper, 'init', lambda: poisoned), mock.patch.object(
      trainer.logging, 'warning', lambda msg, *args: warnings.append(msg % args)):
    state = trainer.train(config, str(tmp_path / 'skip'), stepper, data)
  skipped = [w for w in warnings if 'skipped' in w]
  assert len(skipped) == 4 and all('in member 2 (seed 9)' in w for w in skipped), warnings
  assert state.skipped.tolist() == [0, 0, 4]


class _Recorder:
  """A metric writer that appends (name, step, scalars) to `written`."""

  def __init__(self, name, written):
    self.name, self.written = name, written

  def write_scalars(self, step, scalars):
    self.written.append((self.name, step, dict(scalars)))


def test_log_scalars_are_the_mean_and_spread_and_each_members_own(tmp_path):
  config = load_config('dcgan.py:digits,runlocal,mlp', seed=SEED, num_seeds=2, num_steps=2,
                       sample_every=0)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  written = []
  Recorder = lambda name: _Recorder(name, written)  # pylint: disable=invalid-name
  metrics = {'critic_loss': np.array([[1.0, 3.0]]), 'n_critic': np.array([[1.0, 1.0]])}
  health = trainer._HealthCheck(None, False, stepper.seeds)
  trainer._write_log(Recorder('main'), [Recorder('seed_7'), Recorder('seed_8')], health, 2,
                     metrics, {'train/images_per_sec': 5.0})
  assert written == [
      ('main', 2, {'train/critic_loss': 2.0, 'train/critic_loss_seed_std': 1.0, 'train/n_critic': 1.0,
                   'train/images_per_sec': 5.0}),
      ('seed_7', 2, {'train/critic_loss': 1.0, 'train/n_critic': 1.0}),
      ('seed_8', 2, {'train/critic_loss': 3.0, 'train/n_critic': 1.0})]


def test_eval_scalars_are_the_mean_and_spread_and_each_members_own():
  written = []
  Recorder = lambda name: _Recorder(name, written)  # pylint: disable=invalid-name
  result = seeds.combine([{'fid': 10.0, 'kid_std': 0.5, 'step': 4, 'num_samples': 8},
                          {'fid': 14.0, 'kid_std': 1.5, 'step': 4, 'num_samples': 8}])
  assert seeds.member_scores(result) == [{'fid': 10.0, 'kid_std': 0.5},
                                         {'fid': 14.0, 'kid_std': 1.5}]
  trainer._write_eval(Recorder('main'), [Recorder('seed_7'), Recorder('seed_8')], 4, result)
  assert written == [
      ('main', 4, {'eval/fid': 12.0, 'eval/fid_seed_std': 2.0, 'eval/kid_std': 1.0}),
      ('seed_7', 4, {'eval/fid': 10.0, 'eval/kid_std': 0.5}),
      ('seed_8', 4, {'eval/fid': 14.0, 'eval/kid_std': 1.5})]
  assert seeds.member_scores({'fid': 3.0}) == []  # one seed: no members' values


def test_evaluation_scores_every_member_with_its_own_seeds_samples():
  config = load_config('dcgan.py:digits,runlocal,mlp', seed=SEED, num_seeds=3)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  config.eval.num_samples = 8

  class MeanPixel:  # an evaluator whose score is the samples' mean
    def run(self, batches):
      pixels = np.concatenate([np.asarray(b) for b, _ in batches])
      return {'mean_pixel': float(np.mean(pixels)),  # and a within-run spread of its own
              'mean_pixel_std': float(np.std(pixels)), 'num_samples': 8}
  state = stepper.init()
  result = modes._evaluation(config, stepper, MeanPixel()).run(state)
  one_config = load_config('dcgan.py:digits,runlocal,mlp', seed=SEED + 1)
  one_config.eval.num_samples = 8
  one_stepper = Stepper(one_config, data.image_shape, data.num_classes)
  alone = modes._evaluation(one_config, one_stepper, MeanPixel()).run(one_stepper.init())
  members = result['mean_pixel_members']
  assert len(members) == 3 and result['num_samples'] == 8
  np.testing.assert_allclose(members[1], alone['mean_pixel'], rtol=1e-5)
  np.testing.assert_allclose(result['mean_pixel'], np.mean(members), rtol=1e-6)
  np.testing.assert_allclose(result['mean_pixel_seed_std'], np.std(members), rtol=1e-5)
  own = result['mean_pixel_std_members']  # each member's own spread, kept apart from the seeds'
  assert len(own) == 3 and 'mean_pixel_std_seed_std' not in result
  np.testing.assert_allclose(result['mean_pixel_std'], np.mean(own), rtol=1e-6)
  np.testing.assert_allclose(own[1], alone['mean_pixel_std'], rtol=1e-5)
  assert len(set(members)) == 3


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_sample_mode_writes_a_members_samples_and_refuses_bad_values(tmp_path):
  spec = 'configs/dcgan.py:digits,runlocal,mlp'
  many, alone = tmp_path / 'many', tmp_path / 'alone'
  for workdir, flags in ((many, [f'--config.seed={SEED}', '--config.num_seeds=3']),
                         (alone, [f'--config.seed={SEED + 2}'])):
    proc = run_main(f'--config={spec}', f'--workdir={workdir}', '--config.num_steps=2',
                    '--config.sample_every=0', *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
  outs = []
  for workdir, flags in ((many, ['--seed_index=2']), (alone, [])):
    outs.append(tmp_path / f'{workdir.name}.npz')
    proc = run_main(f'--workdir={workdir}', '--mode=sample', '--num_samples=10',
                    f'--out={outs[-1]}', *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])['step'] == 2
  with np.load(outs[0]) as member, np.load(outs[1]) as separate:
    np.testing.assert_allclose(member['images'], separate['images'], atol=1e-5)
  for flags, message in ((['--seed_index=3'], '--seed_index must be >= 0 and < num_seeds (3)'),
                         (['--seed_index=-1'], '--seed_index must be >= 0')):
    proc = run_main(f'--workdir={many}', '--mode=sample', *flags)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        f'error: {message}'), proc.stderr[-2000:]


def test_num_seeds_cannot_change_on_resume_and_an_old_run_had_one(tmp_path):
  from gan_jax import rundir  # pylint: disable=g-import-not-at-top
  config = load_config('dcgan.py:digits,runlocal,mlp')
  rundir.write_config(config, str(tmp_path))
  saved = json.loads((tmp_path / 'config.json').read_text())
  del saved['num_seeds']  # a run from before num_seeds
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  rundir.check_resume_config(config, str(tmp_path))   # 1 == absent
  config.num_seeds = 2
  with pytest.raises(ConfigError, match=r'num_seeds \(1 -> 2\)'):
    rundir.check_resume_config(config, str(tmp_path))


def test_member_grids_side_by_side_are_each_seeds_grid():
  from gan_jax import sampling  # pylint: disable=g-import-not-at-top
  config = load_config('acgan.py:digits,runlocal,mlp', seed=SEED, num_seeds=2)
  data = input_pipeline.load(config.dataset)
  stepper = Stepper(config, data.image_shape, data.num_classes)
  state = stepper.init()
  inputs = [sampling.grid_inputs(stepper, seed, 16) for seed in stepper.seeds]
  alone = sampling.member_grids(stepper, state, inputs[:1])  # grid_members 'first'
  np.testing.assert_array_equal(alone, sampling.grid(stepper, seeds.member(state, 0),
                                                     inputs[0]))
  both = sampling.member_grids(stepper, state, inputs)
  h, w, _ = alone.shape
  assert both.shape == (h + 8, 2 * w + 12, 1)
  for k in range(2):
    np.testing.assert_array_equal(
        both[4:4 + h, 4 + k * (w + 4):4 + k * (w + 4) + w],
        sampling.grid(stepper, seeds.member(state, k), inputs[k]))
