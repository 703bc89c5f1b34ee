"""The experiment scripts run and print what they promise (tiny configs)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, timing_env


def test_benchmark_prints_one_json_line_with_steps_per_call():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'),
       '--config=configs/wgan_gp.py:digits,runlocal,mlp', '--config.steps_per_call=2',
       '--steps=2'], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line['steps_per_call'] == 2 and line['n_critic'] == 5 and line['batch_size'] == 16
  assert line['seconds_per_iter'] > 0
  assert abs(line['images_per_s'] - 5 * 16 / line['seconds_per_iter']) < 0.01 * line['images_per_s']


@pytest.mark.slow   # 18 s on 2 cores (compiles and profiles a step); CI runs it
def test_step_profile_splits_the_steps_thunk_time_by_kind_of_work():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'step_profile.py'),
       '--config=configs/dcgan.py:digits,runlocal', '--steps=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  kinds = line['kinds']
  # The conv model's products are XLA's here (conv_impl hybrid); its im2col are slices/concats.
  assert 'products (XLA dot, convolution)' in kinds and line['products_tflops_per_s'] > 0
  assert any(k.startswith('slices') for k in kinds) and any(k.startswith('elementwise') for k in kinds)
  assert abs(sum(v['share'] for v in kinds.values()) - 1) < 0.01
  assert abs(sum(v['ms_per_iter'] for v in kinds.values()) - line['thunk_ms_per_iter']) < 1
  assert line['seconds_per_iter'] > 0 and line['gflop_per_iter'] > 0


@pytest.mark.slow   # a process training two ways, half a minute or more on 2 cores
def test_benchmark_loop_times_the_training_loop_beside_the_bare_step():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'),
       '--config=configs/dcgan.py:digits,runlocal,mlp', '--config.steps_per_call=0', '--loop',
       '--steps=8', '--repeats=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  # runlocal acts every 2 steps: auto steps_per_call makes 4 calls of 2; the bare step is 1.
  assert line['loop_steps'] == 8 and line['loop_calls'] == 4 and line['loop_call_lengths'] == [2]
  assert line['steps_per_call'] == 1
  assert len(line['loop_iters_per_s_runs']) == 2 and len(line['bare_iters_per_s_runs']) == 2
  assert line['loop_iters_per_s'] == max(line['loop_iters_per_s_runs']) > 0
  assert line['iters_per_s'] == max(line['bare_iters_per_s_runs']) > 0
  assert line['loop_vs_bare'] == round(line['loop_iters_per_s'] / line['iters_per_s'], 3)


def test_input_speed_reads_the_same_images_five_ways(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'input_speed.py'), '--make=30',
       '--source_size=40', '--image_size=16', '--batch_size=8', '--seconds=0.3',
       f'--out={tmp_path}'], cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3'})
  assert result.returncode == 0, result.stderr[-2000:]
  lines = {d['source']: d for d in map(json.loads, (line for line in result.stdout.splitlines()
                                                    if line.startswith('{')))}
  assert list(lines) == ['folder_stream', 'folder_memory', 'tfds_memory', 'tfds_stream',
                         'tfds_memory_array_record']
  for name in ('folder_memory', 'tfds_memory', 'tfds_memory_array_record'):
    assert lines[name]['images'] == 30 and lines[name]['images_per_s'] > 0
  for name in ('folder_stream', 'tfds_stream'):
    assert lines[name]['images'] % 8 == 0 and lines[name]['images'] > 0
    rate = lines[name]['images'] / lines[name]['seconds']  # seconds rounded to 0.01
    assert abs(lines[name]['images_per_s'] - rate) < 0.03 * rate
  assert lines['tfds_stream']['copy_seconds'] > 0  # the ArrayRecord copy was made for it
  assert list((tmp_path / 'tfds_array_record').rglob('*.array_record-*'))
  assert list((tmp_path / 'tfds_array_record_only').rglob('*.array_record-*'))
  assert not list((tmp_path / 'tfds_array_record_only').rglob('*.tfrecord-*'))



def test_conditional_table_gives_each_variants_mean_and_spread_over_its_seeds():
  sys.path.insert(0, os.path.join(ROOT, 'experiments'))
  import conditional_table  # pylint: disable=g-import-not-at-top
  def run(seed, acc, fid):
    per_class = {f'acgan_label_accuracy_class_{c}': acc for c in range(10)}
    per_class['acgan_label_accuracy_class_6'] = acc - 0.2
    return {'variant': 'acgan', 'steps': 1200, 'seed': seed, 'acgan_label_accuracy': acc,
            'domain_fid': fid, **per_class}
  results = {('acgan', 1200, s): run(s, acc, fid)
             for s, acc, fid in ((0, 0.9, 10.0), (1, 0.8, 12.0))}
  line = conditional_table.table(results).splitlines()[-1]
  assert line == '| acgan | 1200 | 0.850 ± 0.071 | 0.65 (class 6) | 11.0 ± 1.4 | — | 0,1 |'
  results['acgan', 1200, 0]['domain_intra_fid'] = 20.0   # one seed's intra-FID: not a mean
  assert conditional_table.table(results).splitlines()[-1] == line
  results['acgan', 1200, 1]['domain_intra_fid'] = 24.0
  assert conditional_table.table(results).splitlines()[-1] == (
      '| acgan | 1200 | 0.850 ± 0.071 | 0.65 (class 6) | 11.0 ± 1.4 | 22.0 ± 2.8 | 0,1 |')


def test_table_runs_names_this_machines_cpu_as_proc_cpuinfo_does():
  sys.path.insert(0, os.path.join(ROOT, 'experiments'))
  try:
    import table_runs  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  cpu = table_runs.cpu()
  assert cpu.endswith(f', {os.cpu_count()} cores'), cpu
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      info = f.read()
    name = next(line.split(':', 1)[1].strip() for line in info.splitlines()
                if line.startswith('model name'))
    assert cpu.startswith(name), (cpu, name)
    if 'cpu family' in info:
      assert '(family ' in cpu and ', model ' in cpu, cpu


def _stylegan2_table(*args):
  """experiments/stylegan2_table.py ARGS in a subprocess (its flags are conditional_table's)."""
  return subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'stylegan2_table.py'),
                         *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_stylegan2_table_gives_each_rows_mean_and_spread_and_adas_final_p(tmp_path):
  def run(grid, row, budget, seed, fid, iterations, seconds, **p):
    return {'grid': grid, 'row': row, 'budget': budget, 'seed': seed, 'domain_fid': fid,
            'iterations': iterations, 'seconds': seconds, **p}
  runs = [run('wallclock', 'sngan', 600, 0, 80.0, 500, 603, classifier_score=5.5),
          run('wallclock', 'biggan', 600, 0, 60.0, 200, 604, domain_intra_fid=90.0,
              acgan_label_accuracy=0.75),
          run('wallclock', 'stylegan2', 600, 0, 40.0, 700, 605, ada_p=0.1),
          run('wallclock', 'stylegan2', 600, 1, 50.0, 720, 607, ada_p=0.2),
          run('ada', 'ada', 2000, 0, 30.0, 2000, 2100, ada_p=0.3, r_v=0.1),
          run('ada', 'ada', 2000, 1, 34.0, 2000, 2200, ada_p=0.5, r_v=0.2),
          run('ada', 'noada', 2000, 0, 31.0, 2000, 2000),   # a line from before r_v
          run('ada', 'diffaugment', 2000, 0, 20.0, 2000, 2000),       # so is this one,
          run('ada', 'diffaugment', 2000, 1, 22.0, 2000, 2000, r_v=0.3)]   # not this
  (tmp_path / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in runs))
  tables = {grid: _stylegan2_table(f'--grid={grid}', '--table', f'--out={tmp_path}')
            for grid in ('wallclock', 'ada')}
  assert all(t.returncode == 0 for t in tables.values()), tables
  assert tables['wallclock'].stdout.splitlines()[2:] == [   # the grid's order; one seed: no
      "| stylegan2 | StyleGAN2-ADA, configs/stylegan2.py's 'small' | 600 s | 45.0 ± 7.1 | — | "
      '— | — | 710 ± 14 | 606 ± 1 | 0.150 ± 0.071 | 0,1 |',      # spread; no ADA: no p
      '| sngan | SNGAN, the preset (conv model) at 32 px | 600 s | 80.0 | — | 5.50 | — | 500 | '
      '603 | — | 0 |',
      "| biggan | BigGAN (labels), configs/biggan.py's 'small' | 600 s | 60.0 | 90.0 | — | "
      '0.750 | 200 | 604 | — | 0 |']                            # conditional: intra-FID, labels
  assert tables['ada'].stdout.splitlines()[2:] == [
      '| noada | no augmentation | 2000 iterations | 31.0 | — | — | — | 2000 | — | — | 0 |',
      "| ada | ADA 'bgc', target 0.6, ada_kimg 100 | 2000 iterations | 32.0 ± 2.8 | — | — | — | "
      '2000 ± 0 | 0.400 ± 0.141 | 0.15 ± 0.07 | 0,1 |',           # no seconds: not timed
      '| diffaugment | DiffAugment (color,translation,cutout), no ADA | 2000 iterations | '
      '21.0 ± 1.4 | — | — | — | 2000 ± 0 | — | 0.30 (seed 1) | 0,1 |']   # r_v: the line with it


def test_stylegan2_table_curves_compare_the_rows_at_each_scored_iteration(tmp_path):
  """--curves reads the runs' eval/domain_fid (and the ada row's train/ada_p) from their event
  files, finished or not, and averages the seeds that reached each iteration."""
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  runs = {('noada', 0): {100: 90.0, 200: 80.0}, ('ada', 0): {100: 95.0, 200: 70.0},
          ('ada', 1): {100: 85.0}}            # seed 1 has not reached 200 yet
  for (row, seed), fids in runs.items():
    writer = metric_writers.create_default_writer(str(tmp_path / 'ada' / f'{row}_300_s{seed}'),
                                                  asynchronous=False)
    for step, fid in fids.items():
      writer.write_scalars(step, {'eval/domain_fid': fid})
      if row == 'ada':
        writer.write_scalars(step, {'train/ada_p': 0.01 * step / 100 + 0.01 * seed})
    writer.close()
  result = _stylegan2_table('--grid=ada', '--curves', '--steps=300', '--seeds=0,1,2',
                            f'--out={tmp_path}')
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines() == [
      "| iteration | noada: domain FID (train) | ada: domain FID (train) | ADA's p |",
      '|---|---|---|---|',
      '| 100 | 90.0 (1) | 90.0 ± 7.1 (2) | 0.015 ± 0.007 (2) |',
      '| 200 | 80.0 (1) | 70.0 (1) | 0.020 (1) |']
  assert (tmp_path / 'ada_300_curves.png').stat().st_size > 0
  assert 'ada grid' in _stylegan2_table('--grid=wallclock', '--curves', f'--out={tmp_path}').stderr


def test_stylegan2_table_refuses_an_unknown_row_before_any_work(tmp_path):
  result = _stylegan2_table('--grid=ada', '--only=ada,dcgan', f'--out={tmp_path / "out"}')
  assert result.returncode == 1
  assert 'no row dcgan in the ada grid; its rows: noada, ada, diffaugment' in result.stderr
  assert not (tmp_path / 'out').exists()
  assert 'grid' in _stylegan2_table('--table', f'--out={tmp_path}').stderr   # required
  result = _stylegan2_table('--grid=wallclock', '--table', f'--out={tmp_path}')
  assert result.returncode == 0 and result.stdout.count('\n') == 2   # no runs: the header


def test_eval_cost_times_every_extractor_and_metric(tmp_path):
  from test_scoring import _random_classifier  # pylint: disable=g-import-not-at-top
  _random_classifier(tmp_path / 'clf')
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'eval_cost.py'), '--dataset=digits',
       f'--classifier={tmp_path / "clf"}', '--images=20', '--batch=10', '--num_samples=200',
       '--kid_subsets=2', '--kid_subset_size=50', '--pr_samples=60', '--classes=4'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(line['extract']) == {'domain'} and line['extract']['domain']['images_timed'] == 20
  assert line['extract']['domain']['seconds_per_1000'] > 0
  assert set(line['metrics']['domain']) == {
      'statistics_of_the_samples', 'fid', 'kid', 'precision_recall_density_coverage',
      'intra_fid_4_classes'}
  assert all(s >= 0 for s in line['metrics']['domain'].values())


@pytest.mark.slow   # 13 s on 2 cores (a compile per flag set); CI runs it
def test_xla_cpu_flags_times_each_set_against_the_default():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'xla_cpu_flags.py'),
       '--config=configs/wgan_gp.py:digits,runlocal,mlp', '--batch_size=16', '--steps=1',
       '--rounds=1', '--candidates=vector_512'], cwd=ROOT, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  line = json.loads(lines[-1])
  assert set(line['medians']) == {'default', 'vector_512'}
  assert all(s > 0 for s in line['medians'].values())
  assert any(l.startswith('| vector_512 | `--xla_cpu_prefer_vector_width=512` |') for l in lines)


@pytest.mark.slow   # a grouped convolution takes tens of seconds on XLA:CPU
def test_modconv_bench_times_both_forms_of_the_modulated_convolution():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'modconv_bench.py'),
       '--layers=small_16px_conv0_up', '--rounds=1'], cwd=ROOT, capture_output=True, text=True,
      timeout=600, env=timing_env())
  assert result.returncode == 0, result.stderr[-2000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line['layer'] == 'small_16px_conv0_up'
  assert line['fused_ms'] > 0 and line['unfused_ms'] > 0
  # the same convolutions' work in both forms, within the modulation's and demodulation's
  assert line['fused_gflop'] > 1 and abs(line['fused_gflop'] / line['unfused_gflop'] - 1) < 0.05


@pytest.mark.slow   # grouped convolutions again, and the generator compiled twice
def test_modconv_bench_times_the_generators_sampling_and_the_filters_in_both_forms():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'modconv_bench.py'), '--generator',
       '--filters', '--batch=8', '--rounds=1'], cwd=ROOT, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [json.loads(l) for l in result.stdout.strip().splitlines()]
  assert lines[0]['batch'] == 8 and lines[0]['conv_impl'] == 'hybrid'   # a CPU's
  assert lines[0]['fused_ms'] > 0 and lines[0]['unfused_ms'] > 0
  assert [l['filter'] for l in lines[1:]] == [
      'small_d_32px_conv1_blur', 'small_d_32px_skip_down', 'small_g_32px_conv0_up',
      'small_g_32px_img_up']
  assert all(l['xla_ms'] > 0 and l['hybrid_ms'] > 0 for l in lines[1:])
  assert 'layer' not in result.stdout          # not --layers' timings too


def test_modconv_bench_times_ada_forward_and_gradient_at_each_side():
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'modconv_bench.py'), '--ada',
       '--ada_sides=16,24', '--ada_batch=2', '--rounds=1'], cwd=ROOT, capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [json.loads(l) for l in result.stdout.strip().splitlines()]
  assert [l['images'] for l in lines] == [[2, 16, 16, 3], [2, 24, 24, 3]]
  assert all(l['forward_and_gradient_ms'] > 0 for l in lines)
  assert 'layer' not in result.stdout          # not --layers' timings too


def test_critic_overfit_holds_out_the_rows_its_subset_left_out():
  from experiments import critic_overfit  # pylint: disable=g-import-not-at-top
  from gan_jax import errors, input_pipeline  # pylint: disable=g-import-not-at-top
  subset = set(input_pipeline.subset_rows(1000, 0.1))
  train, held = critic_overfit.split_rows(1000, 0.1, 60, seed=0)
  assert len(train) == 60 and set(train) <= subset
  assert len(held) == 60 and not set(held) & subset
  assert all(map(np.array_equal, (train, held), critic_overfit.split_rows(1000, 0.1, 60, 0)))
  # other held-out images: rows of those; the whole subset where num exceeds it
  train, held = critic_overfit.split_rows(1000, 0.1, 500, seed=1, heldout_count=30)
  assert set(train) == subset and sorted(held) == list(range(30))
  with pytest.raises(errors.ConfigError, match='--heldout'):
    critic_overfit.split_rows(1000, 1.0, 60, seed=0)


def test_critic_overfit_refuses_a_workdir_without_a_run_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'critic_overfit.py'),
       f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f'error: {tmp_path} holds no run (no config.json)']


@pytest.mark.slow   # a StyleGAN2 run's compile: about a minute on 2 cores
def test_critic_overfit_gives_adas_heuristics_of_each_checkpoint(tmp_path):
  from conftest import run_main  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'run'
  proc = run_main('--config=configs/stylegan2.py:digits,runlocal', f'--workdir={workdir}',
                  '--config.num_steps=4', '--config.sample_every=0', '--config.dataset.subset=0.2',
                  timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'critic_overfit.py'),
       f'--workdir={workdir}', '--steps=all', '--num=40', '--batch=30'],   # 30 -> 32: groups of 4
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{')]
  assert [line['step'] for line in lines] == [2, 4]   # runlocal checkpoints every 2 steps
  for line in lines:
    assert line['num'] == {'train': 40, 'heldout': 40, 'generated': 40}
    train, held, gen = line['d_train'], line['d_heldout'], line['d_generated']
    r_v = (train - held) / (train - gen)
    # the means are rounded to 4 decimals: r_v recomputed from them is off by up to this much
    rounding = (1 + abs(r_v)) * 1e-4 / abs(train - gen) + 5e-5
    assert line['r_v'] == pytest.approx(r_v, abs=rounding * 1.01)
    assert -1 <= line['r_t'] <= 1 and line['r_t'] * 40 == pytest.approx(round(line['r_t'] * 40))
  assert lines[0]['d_train'] != lines[1]['d_train']   # each checkpoint's own critic
