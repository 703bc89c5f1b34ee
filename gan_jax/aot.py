"""--mode=compile: a run's training call compiled ahead of time for a TPU slice, on a machine
without one, to learn before renting the slice whether it compiles and fits in HBM.

It is the call training runs: the same Stepper (mesh over the slice's devices, shardings,
donation, dtype, num_seeds, iterations per call), traced on abstract state and batches and
compiled by libtpu for the slice (gan_jax/targets.py). Nothing is trained, loaded or downloaded:
the data's spec gives the shapes.
"""

import json
import math
import re
import time
from typing import Any, Dict, Optional, Tuple

from absl import logging

from gan_jax import (checks, files, flops, hardware, input_pipeline, schedule, sharding,
                     targets)
from gan_jax.errors import CompileError
from gan_jax.stepper import Stepper

_REQUIRED = re.compile(r'(?:required|Used) [^(]*?\(?([\d.]+)([KMGT])\)?')


def _out_of_memory(error: Exception) -> Optional[float]:
  """The bytes a program needs per device, from XLA:TPU's out-of-memory refusal (None: the
  error is another one)."""
  text = str(error)
  if 'RESOURCE_EXHAUSTED' not in text:
    return None
  match = _REQUIRED.search(text)
  return float(match.group(1)) * targets.UNITS[match.group(2)] if match else math.nan


def compile_call(config, spec: input_pipeline.DataSpec, devices, batch_size: int
                 ) -> Dict[str, Any]:
  """Compiles the run's largest training call with a global batch of `batch_size` for
  `devices`; returns what it needs per device and its FLOPs (`fits` False where XLA ran out of
  HBM)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.batch_size = batch_size
  stepper = Stepper(config, spec.image_shape, spec.num_classes, devices=devices)
  length, n_critic = schedule.largest_call(config)
  start = time.time()
  call = (length, n_critic, batch_size, spec.image_dtype, spec.num_classes > 0)
  result = {'batch_size': batch_size, 'batch_per_device': batch_size // len(devices),
            'call_iterations': length, 'n_critic': n_critic,
            'flops_per_iteration': flops.count(stepper.trace(*call).jaxpr) / length}
  try:
    compiled = stepper.lower(*call).compile()
  except Exception as e:  # pylint: disable=broad-except  (XLA's errors are plain runtime errors)
    needed = _out_of_memory(e)
    if needed is None:
      detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise CompileError(f'the training call does not compile for {len(devices)} x '
                         f'{devices[0].device_kind}: {detail}') from e
    return {**result, 'fits': False, 'hbm_bytes_per_device': needed,
            'compile_seconds': round(time.time() - start, 1)}
  memory = compiled.memory_analysis()
  hbm = (memory.argument_size_in_bytes + memory.temp_size_in_bytes +
         memory.output_size_in_bytes - memory.alias_size_in_bytes)
  return {**result, 'fits': True, 'hbm_bytes_per_device': hbm,
          'memory_per_device': {
              'arguments': memory.argument_size_in_bytes,
              'temporaries': memory.temp_size_in_bytes,
              'outputs': memory.output_size_in_bytes,
              'aliased': memory.alias_size_in_bytes,
              'generated_code': memory.generated_code_size_in_bytes},
          'compile_seconds': round(time.time() - start, 1)}


def _fits(result: Dict[str, Any], capacity: Optional[float]) -> bool:
  return result['fits'] and (capacity is None or result['hbm_bytes_per_device'] <= capacity)


MAX_BATCH_PER_DEVICE = 2 ** 20  # the search stops there: larger batches fit too (a lower bound)


def _tolerance(good: int) -> int:
  """How close the search gets: within 1 % of the largest batch that fits (exact below 200)."""
  return max(1, good // 100)


def _next_candidate(results: Dict[int, Dict[str, Any]], good: int, bad: Optional[int],
                    capacity: Optional[float]) -> int:
  """The per-device batch to compile next. Below any batch known not to fit: where the line
  through the two largest batches that fit reaches the capacity (HBM grows about linearly with
  the batch), or just above the largest that fits when the line puts the limit there; without
  a line, doubling. With a batch that does not fit: the midpoint (the first probe that fails
  is halved until one fits)."""
  if bad is None:
    fitted = sorted((b, r['hbm_bytes_per_device']) for b, r in results.items() if r['fits'])
    if len(fitted) >= 2 and capacity:
      (b1, h1), (b2, h2) = fitted[-2:]
      if h2 > h1:
        guess = b2 + int((capacity - h2) // ((h2 - h1) / (b2 - b1)))
        return max(guess, good + _tolerance(good))
    return good * 2
  if good == 0:
    return max(1, bad // 2)
  # Bracketed: where the line between the two ends reaches the capacity (regula falsi), on
  # every other compile; the midpoint on the others, so that one end cannot stall the search.
  # The guess stays the tolerance inside either end: a batch that fails just over the
  # capacity puts the line's answer at bad - 1, which would narrow the bracket by one.
  h_good, h_bad = (results[b]['hbm_bytes_per_device'] for b in (good, bad))
  if capacity and h_bad > h_good and len(results) % 2 == 0:
    guess = good + int((capacity - h_good) * (bad - good) / (h_bad - h_good))
    step = _tolerance(good)
    return min(max(guess, good + step), max(bad - step, good + 1))
  return (good + bad) // 2


def fit_batch(config, spec, devices, capacity: Optional[float],
              first: Optional[Dict[str, Any]] = None) -> Tuple[int, Dict[str, Any]]:
  """The largest global batch (a multiple of the device count) whose call fits, to within 1 %,
  searched over compiles of the per-device batch (_next_candidate: usually four), from the
  config's batch (`first`: its result, if compiled already); (0, the smallest batch's result)
  if none does."""
  count = len(devices)
  results: Dict[int, Dict[str, Any]] = {}
  good, bad = 0, None
  per_device = max(1, config.batch_size // count)
  while True:
    if per_device == config.batch_size // count and first is not None:
      result = results[per_device] = first
    else:
      result = results[per_device] = compile_call(config, spec, devices, per_device * count)
    fits = _fits(result, capacity)
    logging.info('batch %d (%d per device): %s, %.2f GiB per device', per_device * count,
                 per_device, 'fits' if fits else 'does not fit',
                 result['hbm_bytes_per_device'] / 2 ** 30)
    if fits:
      good = max(good, per_device)
    else:
      bad = per_device if bad is None else min(bad, per_device)
    if (bad is not None and bad - good <= _tolerance(good)) or good >= MAX_BATCH_PER_DEVICE:
      break
    per_device = _next_candidate(results, good, bad, capacity)
  return good * count, results[good] if good else results[min(results)]


def _roofline(result: Dict[str, Any], chip: Optional[hardware.Chip], devices: int,
              dtype: str) -> Optional[float]:
  """A lower bound on one iteration's time per device: the FLOPs at the chip's peak, or the
  call's arguments read and outputs written once at the HBM bandwidth, whichever is longer."""
  if chip is None or 'memory_per_device' not in result:
    return None
  memory = result['memory_per_device']
  peak = chip.bf16_flops if dtype == 'bfloat16' else chip.f32_flops
  compute = result['flops_per_iteration'] / devices / peak
  traffic = (memory['arguments'] + memory['outputs']) / chip.hbm_bandwidth
  return max(compute, traffic / result['call_iterations'])


def report(config, target: str, find_batch: bool = False) -> Dict[str, Any]:
  """The compile report of `config` for the TPU slice `target` (gan_jax/targets.py); with
  `find_batch`, also the largest global batch that fits."""
  devices = targets.devices(target)
  hosts = sharding.process_count(devices)
  checks.check_config(config, len(devices), hosts)
  spec = input_pipeline.spec(config.dataset)
  checks.check_data(config, spec.image_shape, spec.num_classes)
  kind = devices[0].device_kind
  capacity = targets.usable_hbm(devices[0])
  chip = hardware.chip(kind)
  if capacity is None and chip is not None:
    capacity = chip.hbm_bytes
  logging.info('Compiling the training call of %s for %s: %d x %s on %d host(s)',
               config.gan, target, len(devices), kind, hosts)
  result = compile_call(config, spec, devices, config.batch_size)
  out = {'target': target, 'topology': targets.parse(target)[0], 'device_kind': kind,
         'devices': len(devices), 'hosts': hosts, 'parallelism': config.parallelism,
         'dtype': config.dtype, 'num_seeds': config.num_seeds, 'fits': _fits(result, capacity),
         'hbm_bytes_per_device': result['hbm_bytes_per_device'],
         'hbm_capacity_bytes_per_device': capacity, **result}
  out['fits'] = _fits(result, capacity)  # a compiled call may still exceed the nominal HBM
  bound = _roofline(result, chip, len(devices), config.dtype)
  if bound is not None:
    out['roofline_seconds_per_iteration'] = bound
  if find_batch:
    batch, best = fit_batch(config, spec, devices, capacity, result)
    out['largest_batch'] = batch
    out['largest_batch_per_device'] = batch // len(devices)
    out['largest_batch_hbm_bytes_per_device'] = best['hbm_bytes_per_device']
    if batch // len(devices) >= MAX_BATCH_PER_DEVICE:  # the search stopped: more fits
      out['largest_batch_is_a_lower_bound'] = True
  return out


def write(result: Dict[str, Any], workdir: str) -> str:
  """Writes the report as WORKDIR/compile_TARGET.json (local or gs://); returns its path."""
  path = f"{workdir}/compile_{result['target'].replace(':', '_')}.json"
  files.path(workdir).mkdir(parents=True, exist_ok=True)
  files.write_text(path, json.dumps(result, indent=1))
  return path


def refusal(result: Dict[str, Any]) -> str:
  """The one line for a call that does not fit."""
  need = result['hbm_bytes_per_device'] / 2 ** 30
  have = result['hbm_capacity_bytes_per_device']
  have = f'{have / 2 ** 30:.2f} GiB' if have else 'an unknown amount'
  return (f"batch_size {result['batch_size']} does not fit {result['target']}: the training "
          f"call needs {need:.2f} GiB of HBM per chip and a {result['device_kind']} has {have}; "
          f"lower batch_size, or find the largest that fits with --fit_batch")

