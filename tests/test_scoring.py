"""The domain classifier and --mode=eval, end to end on digits."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util.tensor_util import make_ndarray as tf_make_ndarray

from conftest import load_config, run_main, run_tool
from gan_jax import (classifier, evaluator, extractors, feature_metrics, inception, input_pipeline,
                     modes)
from gan_jax.errors import ConfigError


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_classifier_trains_saves_loads_and_eval_mode_scores_a_run(tmp_path, monkeypatch):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))   # reference statistics
  config = load_config('acgan.py:digits,runlocal', num_steps=2)
  data = input_pipeline.load(config.dataset)
  params = classifier.train(data.images[:800], data.labels[:800], 10, epochs=2,
                            log=lambda _: None)
  probs, features = classifier.predict(params, 10, data.images[800:1200])
  accuracy = float(np.mean(probs.argmax(1) == data.labels[800:1200]))
  assert accuracy > 0.5  # 10 classes: chance is 0.1
  assert features.shape == (400, classifier.FEATURE_DIM)
  meta = {'dataset': 'digits', 'num_classes': 10, 'image_shape': [28, 28, 1],
          'feature_dim': classifier.FEATURE_DIM, 'test_accuracy': accuracy}
  clf_dir = tmp_path / 'clf'
  classifier.save(str(clf_dir), params, meta)
  # Extractors take uint8 data or floats in [-1, 1] (generated samples) alike.
  config.eval.classifier = str(clf_dir)
  ext = extractors.domain_extractor(config, data.image_shape)
  float_probs, float_features = ext.predict(data.images[800:1200] / 127.5 - 1.0)
  np.testing.assert_allclose(float_probs, probs, atol=1e-5)
  np.testing.assert_allclose(float_features, features, rtol=1e-4, atol=1e-4)
  restored, restored_meta = classifier.load(str(clf_dir))
  assert restored_meta == meta
  np.testing.assert_array_equal(classifier.predict(restored, 10, data.images[:50])[0],
                                classifier.predict(params, 10, data.images[:50])[0])

  # Training with eval_every: eval/* scalars, and the best checkpoint by domain FID.
  workdir = tmp_path / 'run'
  small = dict(classifier=str(clf_dir), num_samples=200, kid_subsets=5, kid_subset_size=100,
               pr_samples=100)
  config.eval_every = 1
  config.eval.update(small)
  modes.train(config, str(workdir))
  acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={'tensors': 0})
  acc.Reload()
  fids = {e.step: float(tf_make_ndarray(e.tensor_proto)) for e in acc.Tensors('eval/domain_fid')}
  assert sorted(fids) == [1, 2] and 'eval/classifier_score' in acc.Tags()['tensors']
  # A conditional GAN: the intra-FID (its mean and each class's) in TensorBoard too.
  assert {'eval/domain_intra_fid', 'eval/domain_intra_fid_class_9', 'eval/domain_density',
          'eval/domain_coverage'} <= set(acc.Tags()['tensors'])
  best_step = min(fids, key=fids.get)
  assert os.listdir(workdir / 'best_checkpoint') == [str(best_step)]
  plot = run_tool('plot_fid', f'--workdir={workdir}', timeout=120)
  assert plot.returncode == 0, plot.stderr[-2000:]
  plotted = json.loads(plot.stdout.strip().splitlines()[-1])
  assert plotted['steps'] == [1, 2] and plotted['values'] == pytest.approx([fids[1], fids[2]])
  assert os.path.getsize(plotted['out']) > 1000

  args = ['--config=configs/acgan.py:digits,runlocal', f'--workdir={workdir}', '--mode=eval',
          '--best', '--config.num_steps=2', '--config.eval_every=1',
          *[f'--config.eval.{k}={v}' for k, v in small.items()]]
  result = run_main(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(result.stdout.strip().splitlines()[-1])
  assert scores['step'] == best_step and scores['num_samples'] == 200
  assert scores['domain_fid'] == pytest.approx(fids[best_step], rel=1e-4)  # same samples
  counts = scores['reference'].pop('class_counts')   # a conditional run: each class's images
  assert len(counts) == 10 and sum(counts) == 1797
  assert scores['reference'] == {'dataset': 'digits', 'split': 'train', 'count': 1797}
  assert scores['extractors']['domain']['stats'].startswith(str(tmp_path / 'cache'))
  assert scores['domain_fid'] > 0 and 1.0 <= scores['classifier_score'] <= 10.0
  assert 0 <= scores['domain_precision'] <= 1 and 0 <= scores['domain_recall'] <= 1
  assert 0 <= scores['acgan_label_accuracy'] <= 1 and np.isfinite(scores['domain_kid'])
  # Per class and as a confusion matrix (rows: the class asked for): 200 balanced samples.
  confusion = np.array(scores['label_confusion'])
  assert confusion.shape == (10, 10) and (confusion.sum(axis=1) == 20).all()
  assert scores['acgan_label_accuracy'] == pytest.approx(np.trace(confusion) / 200)
  for c in range(10):
    assert scores[f'acgan_label_accuracy_class_{c}'] == pytest.approx(confusion[c, c] / 20)
  # Intra-FID: each class's 20 samples against that class's reference images; the mean.
  per_class = [scores[f'domain_intra_fid_class_{c}'] for c in range(10)]
  assert scores['domain_intra_fid'] == pytest.approx(np.mean(per_class)) and min(per_class) > 0
  assert scores['domain_density'] >= 0 and 0 <= scores['domain_coverage'] <= 1

  # num_seeds=2 (main.py, then --mode=eval from the workdir): every member scored, with the
  # mean and spread; member 0 is the run above (seed 0), so its FID is that run's at step 2.
  seeds_dir = tmp_path / 'seeds'
  trained = run_main('--config=configs/acgan.py:digits,runlocal', f'--workdir={seeds_dir}',
                     '--config.num_seeds=2', '--config.num_steps=2', '--config.sample_every=0')
  assert trained.returncode == 0, trained.stderr[-3000:]
  result = run_main(f'--workdir={seeds_dir}', '--mode=eval',
                    *[f'--config.eval.{k}={v}' for k, v in small.items()])
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(result.stdout.strip().splitlines()[-1])
  members = scores['domain_fid_members']
  assert len(members) == 2 and members[0] != members[1]
  assert members[0] == pytest.approx(fids[2], rel=1e-3)
  assert scores['domain_fid'] == pytest.approx(np.mean(members))
  assert scores['domain_fid_seed_std'] == pytest.approx(np.std(members))
  assert len(scores['classifier_score_members']) == 2
  # The members' confusion counts add up: 200 samples of each member, 20 per class each.
  assert (np.array(scores['label_confusion']).sum(axis=1) == 40).all()

  # A classifier for other images is refused with one line.
  result = run_main(*args[:3], '--config.num_steps=2', '--config.eval_every=1',
                    f'--config.eval.classifier={tmp_path / "nothing"}')
  assert result.returncode == 2 and 'no classifier in' in result.stderr


@pytest.mark.slow   # several processes, over a minute on 2 cores
def test_eval_mode_with_inception_weights(tmp_path, monkeypatch):
  """--mode=eval with an Inception weights file (random weights: the architecture, resizing
  and metric plumbing are what is tested; tests/test_inception.py checks the port itself)."""
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  flat = {k: np.random.default_rng(0).normal(size=s).astype(np.float32) * 0.05
          for k, s in inception._expected_shapes().items()}  # pylint: disable=protected-access
  flat.update({k: np.ones(s, np.float32) for k, s in inception._expected_shapes().items()
               if k.endswith('/var') or k.endswith('/scale')})
  weights = tmp_path / 'inception.npz'
  np.savez(weights, **flat)
  workdir = tmp_path / 'run'
  base = ['--config=configs/wgan_gp.py:digits,runlocal,mlp', f'--workdir={workdir}',
          '--config.num_steps=1']
  assert run_main(*base).returncode == 0
  small = dict(inception_weights=str(weights), num_samples=10, reference_samples=12,
               kid_subsets=2, kid_subset_size=5, pr_samples=8)
  # No --config: the workdir's config.json, with the overrides applied to it.
  args = [f'--workdir={workdir}', '--mode=eval', *[f'--config.eval.{k}={v}' for k, v in small.items()]]
  result = run_main(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(result.stdout.strip().splitlines()[-1])
  assert scores['reference'] == {'dataset': 'digits', 'split': 'train', 'count': 12}
  stats = scores['extractors']['inception']['stats']
  assert stats.startswith(str(tmp_path / 'cache' / 'gan_jax' / 'stats')) and os.path.exists(stats)
  assert scores['fid'] > 0 and 1.0 <= scores['inception_score'] < 1008
  assert np.isfinite(scores['kid']) and 0 <= scores['precision'] <= 1
  assert 'domain_fid' not in scores
  # The cached reference statistics give the same score again.
  again = json.loads(run_main(*args).stdout.strip().splitlines()[-1])
  assert again['fid'] == pytest.approx(scores['fid'], rel=1e-6)
  assert scores['extractors']['inception']['resize_mode'] == 'legacy'
  assert 0 <= scores['density'] and 0 <= scores['coverage'] <= 1 and 'intra_fid' not in scores
  # clean-fid's resize: other features, in a cache of their own, and said in the JSON.
  clean = json.loads(run_main(*args, '--config.eval.resize=clean').stdout.strip().splitlines()[-1])
  assert clean['extractors']['inception']['resize_mode'] == 'clean'
  assert clean['extractors']['inception']['stats'] == stats.replace('_v3.npz', '_clean_v3.npz')
  assert clean['fid'] != pytest.approx(scores['fid'], rel=1e-3)
  # A best_metric that no configured extractor computes is refused with one line.
  wrong = run_main(*args, '--config.eval.best_metric=domain_fid')
  assert wrong.returncode == 2 and 'not computed by the configured extractors' in wrong.stderr


def _random_classifier(directory, seed: int = 0):
  """A digits classifier with random weights (scores need not be good to be tested)."""
  params = classifier.Classifier(10).init(jax.random.PRNGKey(seed),
                                          jnp.zeros((1, 28, 28, 1)))['params']
  classifier.save(str(directory), params, {
      'dataset': 'digits', 'num_classes': 10, 'image_shape': [28, 28, 1],
      'feature_dim': classifier.FEATURE_DIM, 'test_accuracy': 0.1})
  return params


@pytest.fixture(scope='module')
def clf_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('clf')
  _random_classifier(directory)
  return directory


def _eval_config(clf, **eval_fields):
  config = load_config('acgan.py:digits,runlocal', num_steps=2)
  config.eval.update(dict(classifier=str(clf), num_samples=20, kid_subsets=2,
                          kid_subset_size=10, pr_samples=10, stats_dir=''))
  config.eval.update(eval_fields)
  return config


def test_extractors_take_device_images_and_place_their_weights_once(clf_dir, monkeypatch):
  params, _ = classifier.load(str(clf_dir))
  images = jax.random.uniform(jax.random.PRNGKey(1), (1200, 28, 28, 1), jnp.float32, -1, 1)
  want_probs, want_features = classifier.predict(params, 10, np.asarray(images))
  ext = extractors.domain_extractor(_eval_config(clf_dir), (28, 28, 1))
  placed = []
  device_put = jax.device_put

  def spy(x, *args, **kwargs):
    placed.append(type(x))
    return device_put(x, *args, **kwargs)
  monkeypatch.setattr(jax, 'device_put', spy)
  to_numpy = type(images).__array__

  def no_images_to_host(array, *args, **kwargs):
    assert array.ndim != 4, 'images were copied to the host'
    return to_numpy(array, *args, **kwargs)
  monkeypatch.setattr(type(images), '__array__', no_images_to_host)
  # Three calls, the last of three batches (500, 500, 200 padded to 500).
  outputs = [ext.predict(images[:100]), ext.predict(images[100:200]), ext.predict(images)]
  assert all(issubclass(t, jax.Array) for t in placed), placed   # batches only: no weights
  np.testing.assert_allclose(outputs[2][0], want_probs, atol=1e-6)
  np.testing.assert_allclose(outputs[2][1], want_features, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(outputs[1][1], want_features[100:200], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('field,value', [('num_samples', 9), ('kid_subsets', 0),
                                         ('kid_subset_size', 1), ('pr_samples', 3),
                                         ('reference_samples', -1), ('reference_samples', 3),
                                         ('reference_samples', 5), ('dc_k', 0),
                                         ('resize', 'bicubic')])
def test_evaluator_refuses_settings_that_cannot_score(clf_dir, field, value):
  with pytest.raises(ConfigError, match=f'eval.{field} must be .*, got {value!r}'):
    evaluator.Evaluator(_eval_config(clf_dir, **{field: value}), (28, 28, 1))
  # density/coverage's k needs more samples on each side than k.
  with pytest.raises(ConfigError, match=r'eval.dc_k 10 needs more samples.*pr_samples \(10\)'):
    evaluator.check(_eval_config(clf_dir, dc_k=10))


def test_too_few_eval_samples_refuse_the_run_before_any_write(clf_dir, tmp_path):
  config = _eval_config(clf_dir, num_samples=5)
  config.eval_every = 1
  with pytest.raises(ConfigError, match='eval.num_samples must be >= 10'):
    modes.train(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_a_split_the_source_does_not_have_is_refused(clf_dir, tmp_path):
  config = load_config('wgan_gp.py:digits,runlocal,mlp')
  config.dataset.split = 'test'          # digits has one split: 'test' would read the training data
  with pytest.raises(input_pipeline.DataError, match="dataset.split must be 'train'.*'test'"):
    input_pipeline.load(config.dataset)
  npz = tmp_path / 'data.npz'
  np.savez(npz, images=np.zeros((4, 8, 8), np.uint8))
  config.dataset.path = str(npz)
  with pytest.raises(input_pipeline.DataError, match="dataset.split must be 'train'.*'test'"):
    input_pipeline.load(config.dataset)
  config.dataset.split = 'train'
  assert input_pipeline.load(config.dataset).images.shape == (4, 8, 8, 1)
  # The evaluator refuses the reference split up front (a run checks before its first write).
  with pytest.raises(ValueError, match="eval.reference_split must be 'train'.*'test'"):
    evaluator.Evaluator(_eval_config(clf_dir, reference_split='test'), (28, 28, 1))


def test_best_mode_comes_from_the_metrics_table_and_names_unknown_metrics():
  assert extractors.best_mode('fid') == 'min' and extractors.best_mode('domain_kid') == 'min'
  assert extractors.best_mode('inception_score') == 'max'
  assert extractors.best_mode('acgan_label_accuracy') == 'max'
  assert set(extractors.METRICS) == {n for names in extractors.NAMES.values()
                                     for n in names.values()} | {'acgan_label_accuracy'}
  with pytest.raises(ConfigError, match="eval.best_metric 'fdi'.*fid"):
    extractors.best_mode('fdi')


def test_best_with_an_unknown_metric_is_one_line(tmp_path):
  workdir = tmp_path / 'run'
  (workdir / 'best_checkpoint').mkdir(parents=True)
  result = run_main('--config=configs/wgan_gp.py:digits,runlocal,mlp', f'--workdir={workdir}',
                    '--mode=sample', '--best', '--config.eval.best_metric=fdi')
  assert result.returncode == 2, result.stderr[-2000:]
  assert "eval.best_metric 'fdi'" in result.stderr and 'Traceback' not in result.stderr


def test_domain_statistics_are_keyed_by_the_weights(clf_dir, tmp_path):
  other = tmp_path / 'other'
  _random_classifier(other, seed=1)
  assert (other / 'meta.json').read_bytes() == (clf_dir / 'meta.json').read_bytes()
  key = extractors.domain_extractor(_eval_config(clf_dir), (28, 28, 1)).cache_key
  assert extractors.domain_extractor(_eval_config(other), (28, 28, 1)).cache_key != key
  again = tmp_path / 'again'                      # the same weights, saved again
  _random_classifier(again, seed=0)
  assert extractors.domain_extractor(_eval_config(again), (28, 28, 1)).cache_key == key


def test_reference_statistics_are_cached_in_the_user_cache_dir(clf_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  images = jax.random.uniform(jax.random.PRNGKey(2), (20, 28, 28, 1), jnp.float32, -1, 1)
  config = _eval_config(clf_dir, reference_samples=50)
  result = evaluator.Evaluator(config, (28, 28, 1)).run([(images[:8], None), (images[8:], None)])
  stats = result['extractors']['domain']['stats']
  assert stats.startswith(str(tmp_path / 'cache' / 'gan_jax' / 'stats')), stats
  assert os.path.exists(stats) and result['reference']['count'] == 50
  config.eval.stats_dir = str(tmp_path / 'mine')
  again = evaluator.Evaluator(config, (28, 28, 1)).run([(images, None)])
  assert again['extractors']['domain']['stats'].startswith(str(tmp_path / 'mine'))
  assert again['domain_fid'] == pytest.approx(result['domain_fid'], rel=1e-6)


def test_concurrent_cache_writers_never_see_half_a_file(clf_dir, tmp_path, monkeypatch):
  config = _eval_config(clf_dir, reference_samples=50, stats_dir=str(tmp_path / 'stats'))
  ext = extractors.domain_extractor(config, (28, 28, 1))
  replace, renamed = os.replace, []

  def another_writer_meanwhile(src, dst):
    renamed.append(src)
    if len(renamed) == 1:  # a second process writes the same statistics between write and rename
      evaluator.reference_stats(config, ext, 10)
    replace(src, dst)
  monkeypatch.setattr(os, 'replace', another_writer_meanwhile)
  ref = evaluator.reference_stats(config, ext, 10)
  kept, path = ref.kept, ref.path
  assert len(renamed) == 2 and renamed[0] != renamed[1]
  assert os.listdir(tmp_path / 'stats') == [os.path.basename(path)]   # no tmp file left over
  with np.load(path) as f:
    assert int(f['count']) == 50 and np.array_equal(f['kept'], kept)


def test_what_the_first_evaluation_would_find_is_refused_up_front(clf_dir, tmp_path):
  # The label accuracy exists only for a conditional GAN.
  config = _eval_config(clf_dir, best_metric='acgan_label_accuracy')
  evaluator.check(config)
  config.gan, config.loss.adversarial, config.loss.lipschitz = 'wgan_gp', '', ''
  config.model.critic_norm = 'none'
  with pytest.raises(ConfigError, match="'acgan_label_accuracy' is not computed"):
    evaluator.check(config)
  # Reference images of another shape than the generator's: an IDX test split of 32x32.
  idx = tmp_path / 'idx'
  idx.mkdir()
  for prefix, side in (('train', 28), ('t10k', 32)):
    header = bytes([0, 0, 8, 3]) + b''.join(n.to_bytes(4, 'big') for n in (20, side, side))
    (idx / f'{prefix}-images-idx3-ubyte').write_bytes(header + bytes(20 * side * side))
  config = _eval_config(clf_dir, reference_split='test')
  config.dataset.path = str(idx)
  with pytest.raises(ConfigError, match=r'reference images .* have shape \(32, 32, 1\)'):
    evaluator.Evaluator(config, (28, 28, 1))
  # A statistics cache that cannot take files.
  blocker = tmp_path / 'file'
  blocker.write_text('')
  with pytest.raises(ConfigError, match='cannot create the statistics cache .*eval.stats_dir'):
    evaluator.Evaluator(_eval_config(clf_dir, stats_dir=str(blocker / 'stats')), (28, 28, 1))


def test_the_cache_names_the_data_source(clf_dir):
  config = _eval_config(clf_dir)
  ext = extractors.domain_extractor(config, (28, 28, 1))
  other = _eval_config(clf_dir)
  other.dataset.image_size = 32
  names = {evaluator.cache_path(c, ext) for c in (config, other, _eval_config(clf_dir))}
  assert len(names) == 2


def test_kept_reference_features_are_a_random_draw_not_the_first_images(tmp_path):
  """A folder lists its images class by class: the features kept for KID and precision/recall
  (and a reference_samples subset) are a seeded random draw of the split."""
  n = 200
  np.savez(tmp_path / 'sorted.npz', images=np.repeat(np.arange(n, dtype=np.uint8), 64).reshape(
      n, 8, 8, 1), labels=np.repeat(np.arange(10), n // 10))  # image i: all pixels i

  class Identity:  # features: the image's value, so the kept rows name their images
    kind, cache_key, feature_dim, resize = 'domain', 'identity', 1, ''

    def predict(self, images):
      return None, np.asarray(images, np.float64).reshape(len(images), -1)[:, :1]

  config = _eval_config('', stats_dir=str(tmp_path / 'stats'))
  config.dataset.path = str(tmp_path / 'sorted.npz')
  draw = np.random.default_rng(0).permutation(n)
  ref = evaluator.reference_stats(config, Identity(), 30)
  stats, kept = ref.stats, ref.kept
  assert stats.count == n and kept[:, 0].tolist() == draw[:30].tolist()
  assert len(set(kept[:, 0].astype(int) // 20)) >= 8   # from most of the 10 classes
  config.eval.reference_samples = 50
  ref = evaluator.reference_stats(config, Identity(), 30)
  stats, kept = ref.stats, ref.kept
  assert stats.count == 50 and kept[:, 0].tolist() == draw[:30].tolist()
  np.testing.assert_allclose(stats.sum, [np.sort(draw[:50]).sum()])


def test_cache_names_say_the_resize_and_per_class():
  config = _eval_config('')
  name = lambda resize, per_class=False: os.path.basename(evaluator.cache_path(
      config, extractors.Extractor('inception', None, 8, 4, 'abc', {}, resize), per_class))
  assert name('legacy').endswith('_inception_abc_v3.npz')   # the name every earlier cache has
  assert name('clean').endswith('_inception_abc_clean_v3.npz')
  assert name('legacy', True).endswith('_inception_abc_per_class_v3.npz')
  assert name('clean', True).endswith('_inception_abc_clean_per_class_v3.npz')


def test_intra_fid_is_each_class_fid_against_its_reference_images(clf_dir, tmp_path,
                                                                   monkeypatch):
  """Real digits as the 'generated' images, with their labels: each class's FID against the
  reference images of that class, computed here from the features, is the JSON's."""
  config = _eval_config(clf_dir, stats_dir=str(tmp_path / 'stats'), num_samples=300)
  data = input_pipeline.load(config.dataset)
  images, labels = data.images[:300], data.labels[:300]
  batches = [(images[s:s + 100], labels[s:s + 100]) for s in range(0, 300, 100)]
  result = evaluator.Evaluator(config, (28, 28, 1), 10).run(batches)
  ext = extractors.domain_extractor(config, (28, 28, 1))
  real, fake = ext.predict(data.images)[1], ext.predict(images)[1]
  want = []
  for c in range(10):
    r, f = real[data.labels == c], fake[labels == c]
    want.append(feature_metrics.frechet_distance(r.mean(0), np.cov(r, rowvar=False),
                                                 f.mean(0), np.cov(f, rowvar=False)))
  got = [result[f'domain_intra_fid_class_{c}'] for c in range(10)]
  np.testing.assert_allclose(got, want, rtol=1e-4)
  assert result['domain_intra_fid'] == pytest.approx(np.mean(want), rel=1e-4)
  classes_path = result['extractors']['domain']['per_class_stats']
  assert '_per_class_' in classes_path and os.path.exists(classes_path)
  assert 0 < result['domain_density'] and 0 < result['domain_coverage'] <= 1
  # The per-class statistics are cached: a second evaluator reads no reference image.
  monkeypatch.setattr(input_pipeline, 'load', lambda *_: pytest.fail('read the reference'))
  again = evaluator.Evaluator(config, (28, 28, 1), 10).run(batches)
  assert again['domain_intra_fid'] == pytest.approx(result['domain_intra_fid'], rel=1e-9)
  # An unconditional GAN's samples have no classes: no intra-FID.
  unconditional = _eval_config(clf_dir, stats_dir=str(tmp_path / 'stats'), num_samples=300)
  unconditional.gan, unconditional.loss.adversarial, unconditional.loss.lipschitz = (
      'wgan_gp', '', '')
  plain = evaluator.Evaluator(unconditional, (28, 28, 1), 10).run(
      [(b, None) for b, _ in batches])
  assert not [k for k in plain if 'intra_fid' in k] and 'domain_density' in plain


def test_intra_fid_refuses_classes_without_a_covariance(clf_dir, tmp_path):
  stats = str(tmp_path / 'stats')
  # 12 of the 1797 digits: some class has fewer than 2 (refused when the evaluator is built).
  with pytest.raises(ConfigError, match=r'intra-FID needs >= 2 reference images of every '
                                        r'class.*eval.reference_samples 12\).*class \d \([01]\)'):
    evaluator.Evaluator(_eval_config(clf_dir, reference_samples=12, stats_dir=stats),
                        (28, 28, 1), 10)
  assert not os.path.exists(stats) or not os.listdir(stats)   # nothing computed, nothing cached
  with pytest.raises(ConfigError, match=r'eval.num_samples must be >= 20 \(intra-FID'):
    evaluator.Evaluator(_eval_config(clf_dir, num_samples=19), (28, 28, 1), 10)
  # Reference images without labels.
  npz = tmp_path / 'unlabelled.npz'
  np.savez(npz, images=np.zeros((30, 28, 28), np.uint8))
  config = _eval_config(clf_dir, stats_dir=stats)
  config.dataset.path = str(npz)
  with pytest.raises(ConfigError, match='intra-FID needs the reference images. classes'):
    evaluator.Evaluator(config, (28, 28, 1), 10)


def test_compare_scores_runs_on_one_protocol_with_its_card(conditional_run, clf_dir, tmp_path):
  """--mode=eval --compare: a conditional and an unconditional run scored with the first's
  eval settings; each result is its protocol card; the table has both rows."""
  workdir, _ = conditional_run
  other = tmp_path / 'unconditional'
  modes.train(load_config('wgan_gp.py:digits,runlocal,mlp', num_steps=1, sample_every=0,
                          checkpoint_every=1), str(other))
  small = dict(classifier=str(clf_dir), num_samples=20, kid_subsets=2, kid_subset_size=10,
               pr_samples=10, stats_dir=str(tmp_path / 'stats'))
  result = run_main(f'--workdir={workdir}', '--mode=eval', f'--compare={other}',
                    *[f'--config.eval.{k}={v}' for k, v in small.items()])
  assert result.returncode == 0, result.stderr[-3000:]
  *table, line = result.stdout.strip().splitlines()
  runs = json.loads(line)['runs']
  assert [r['workdir'] for r in runs] == [str(workdir), str(other)]
  conditional, unconditional = runs
  # One protocol: the same extractor weights and statistics, reference and sample count.
  for key in ('weights_hash', 'stats', 'path'):
    assert conditional['extractors']['domain'][key] == unconditional['extractors']['domain'][key]
  assert len(conditional['extractors']['domain']['weights_hash']) == 10
  reference = {k: v for k, v in conditional['reference'].items() if k != 'class_counts'}
  assert reference == unconditional['reference'] == {'dataset': 'digits', 'split': 'train',
                                                      'count': 1797}
  assert sum(conditional['reference']['class_counts']) == 1797
  assert conditional['class_counts'] == [2] * 10   # 20 samples, the classes interleaved
  assert 'class_counts' not in unconditional
  for run in runs:
    assert (run['num_samples'], run['seed'], run['generator']) == (20, 0, 'raw')
  assert (conditional['step'], unconditional['step']) == (2, 1)
  # The table: a row per run, its scores as in the JSON, — where a run has no such score.
  head = [c.strip() for c in table[0].strip('|').split('|')]
  assert head[:3] == ['run', 'step', 'generator'] and 'domain_fid' in head
  rows = [[c.strip() for c in row.strip('|').split('|')] for row in table[2:]]
  assert [row[0] for row in rows] == [str(workdir), str(other)] and len(table) == 4
  fid = head.index('domain_fid')
  assert [float(row[fid]) for row in rows] == pytest.approx(
      [r['domain_fid'] for r in runs], rel=1e-3)
  accuracy = head.index('acgan_label_accuracy')
  assert rows[1][accuracy] == '—' and float(rows[0][accuracy]) >= 0
  intra = head.index('domain_intra_fid')
  assert rows[1][intra] == '—' and float(rows[0][intra]) > 0


def test_compare_refuses_runs_whose_reference_images_differ(conditional_run, clf_dir, tmp_path):
  workdir, spec = conditional_run
  config = load_config(spec)
  config.eval.classifier = str(clf_dir)
  other = load_config('wgan_gp.py:digits,runlocal,mlp')
  other.dataset.image_size = 16
  with pytest.raises(ConfigError, match=r'not scored on the protocol of .*dataset.image_size '
                                        r'28 against 16'):
    modes.compare(config, str(workdir), [(str(tmp_path / 'other'), other)])
  assert not (tmp_path / 'other').exists()
  # --compare is for --mode=eval
  result = run_main(f'--workdir={workdir}', '--mode=sample', f'--compare={tmp_path}')
  assert result.returncode == 2 and '--compare is for --mode=eval' in result.stderr
