"""A TPU slice to compile for, on a machine without one: its devices, from libtpu.

A target is what `gcloud compute tpus tpu-vm create --accelerator-type` takes (`v4-8`,
`v5litepod-8` or `v5e-8`, `v5p-16`, `v6e-8`), or a topology as libtpu names it (`v5e:2x4`,
`v4:2x2x2`, `v5p:2x2x4`). Either way the slice is laid out as a TPU VM has it: v4 and v5p run one
device per chip (megacore) with 4 chips per host; v5e and v6e slices of up to 8 chips are one
host (as `v5litepod-8` and `v6e-8` VMs are), larger ones 4 chips per host; v2 and v3 as libtpu
lays them out (a device per core, 4 chips per host).
"""

import os
import re
from typing import List, Optional, Tuple

from gan_jax import platforms
from gan_jax.errors import ConfigError

INSTALL = 'pip install "jax[tpu]==0.10.2"'  # libtpu for the pinned JAX (requirements.txt)

# accelerator-type prefix -> libtpu's generation name, and how many cores the type's number counts
# per chip (v4-8 is 4 chips of 2 cores; v5litepod-8 is 8 chips).
_GENERATIONS = {'v2': ('v2', 2), 'v3': ('v3', 2), 'v4': ('v4', 2), 'v5p': ('v5p', 2),
                'v5litepod': ('v5e', 1), 'v5e': ('v5e', 1), 'v6e': ('v6e', 1)}
_MEGACORE = ('v4', 'v5p', 'v5')
_ACCELERATOR_TYPE = re.compile(r'^(v2|v3|v4|v5p|v5litepod|v5e|v6e)-(\d+)$')
_TOPOLOGY = re.compile(r'^(v2|v3|v4|v5p|v5|v5e|v6e):(\d+(?:x\d+){1,2})$')


def _chips_layout(generation: str, chips: int) -> str:
  """The topology of `chips` chips of an accelerator type, as gcloud lays them out."""
  if chips & (chips - 1) or chips < 1:
    raise ConfigError(f'--target: {generation} slices have a power-of-two number of chips, '
                      f'got {chips}')
  if generation in ('v4', 'v5p'):  # 3-D: 2x2x1, then 2x2x2, 2x2x4, 2x4x4, 4x4x4, 4x4x8, ...
    if chips < 4:
      raise ConfigError(f'--target: the smallest {generation} slice is {generation}-8 (4 chips)')
    if chips == 4:
      return '2x2x1'
    dims, n = [2, 2, 2], chips // 8
    for axis in range(n.bit_length() - 1):
      dims[2 - axis % 3] *= 2
    return 'x'.join(map(str, dims))
  side = 1  # 2-D: 1x1, 2x2, 2x4, 4x4, 4x8, 8x8, ...
  while side * side * 2 <= chips:
    side *= 2
  return f'{min(side, chips // side)}x{max(side, chips // side)}'


def parse(target: str) -> Tuple[str, dict]:
  """(libtpu topology name, its other arguments) of a --target; a ConfigError names the forms."""
  match = _ACCELERATOR_TYPE.match(target)
  if match:
    generation, cores_per_chip = _GENERATIONS[match.group(1)]
    count = int(match.group(2))
    chips = count // cores_per_chip
    topology = f'{generation}:{_chips_layout(generation, chips)}'
  elif _TOPOLOGY.match(target):
    topology = target
  else:
    raise ConfigError(f'--target must be a TPU accelerator type (v4-8, v5litepod-8, v5e-8, '
                      f'v5p-8, v6e-8, ...) or a libtpu topology (v5e:2x4, v4:2x2x2, v5p:2x2x4, '
                      f'...), got {target!r}')
  generation, dims = topology.split(':')
  sizes = [int(d) for d in dims.split('x')]
  chips = 1
  for s in sizes:
    chips *= s
  kwargs = {}
  if generation in _MEGACORE:
    kwargs['chip_config_name'] = 'megacore'
  if generation in ('v5e', 'v6e') and chips <= 8:
    kwargs['chips_per_host_bounds'] = tuple(sizes) + (1,) * (3 - len(sizes))
  elif generation not in ('v2', 'v3'):
    kwargs['chips_per_host_bounds'] = (min(2, sizes[0]), min(2, sizes[1]), 1)
  return topology, kwargs


def devices(target: str) -> List:
  """Every device of the slice `target` (TPU devices of several hosts: process_index tells which),
  for compiling only; a ConfigError when libtpu is missing or does not know the target."""
  topology, kwargs = parse(target)
  os.environ.setdefault('TPU_SKIP_MDS_QUERY', '1')  # no GCE metadata server to ask
  # Compiling holds no TPU: let several such processes load libtpu at once (its lockfile is for
  # processes that share a TPU VM's chips).
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  try:
    import libtpu  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise ConfigError(f'--mode=compile needs libtpu, which is not installed: {INSTALL}') from None
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  try:
    with platforms.native_logs_to_log():
      jax.devices()  # this host's backends first: libtpu looks for a local TPU, quietly here
      return list(topologies.get_topology_desc(platform='tpu', topology_name=topology,
                                               **kwargs).devices)
  except Exception as e:  # pylint: disable=broad-except  (libtpu's own errors)
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ConfigError(f'--target {target!r}: libtpu cannot lay out topology {topology!r} '
                      f'({detail})') from None


_AVAILABLE = re.compile(r'available HBM \(([\d.]+)([KMGT])\)')
UNITS = {'K': 2 ** 10, 'M': 2 ** 20, 'G': 2 ** 30, 'T': 2 ** 40}  # XLA's sizes: 15.75G


def hbm_in_message(message: str) -> Optional[float]:
  """The usable HBM bytes that XLA:TPU's out-of-memory message states, or None."""
  match = _AVAILABLE.search(message)
  return float(match.group(1)) * UNITS[match.group(2)] if match else None


def usable_hbm(device) -> Optional[float]:
  """The HBM bytes XLA:TPU lets one program use on `device`, as its compiler states it: a program
  that needs more than any TPU has is compiled (in milliseconds), and the refusal says how much
  is available. None if the compiler answers otherwise."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  one = jax.sharding.SingleDeviceSharding(device)
  huge = jax.ShapeDtypeStruct((2 ** 40 // 4,), jnp.float32, sharding=one)  # 1 TiB
  try:
    jax.jit(lambda x: jnp.sin(x) * 2, out_shardings=one).lower(huge).compile()
  except Exception as e:  # pylint: disable=broad-except
    return hbm_in_message(str(e))
  return None
