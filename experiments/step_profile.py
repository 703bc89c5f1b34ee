"""Where a CPU training step's time goes: the compiled call of benchmark.py's bare step, traced
with XLA:CPU's per-thunk profiler, its thunks' time summed by kind of operation.

  python experiments/step_profile.py --config=configs/dcgan.py:cifar10 --config.batch_size=64 \
      --config.model.conv_impl=mkl --steps=10      # benchmark.py's --config and --steps

The kinds come from the compiled HLO (what each fusion computes): the matrix products (the
`mkl` custom call, XLA's dots and convolutions), the slices, pads and concatenations (im2col
and col2im of the F/D/W forms), reductions (batch norm's statistics, the losses' sums),
converts and copies (bfloat16 roundings, transposes) and the remaining elementwise fusions
(batch norm's normalisation, the activations, Adam). XLA:CPU runs independent thunks on both
cores at once, so the sum of the thunks' times exceeds the step's wall time; the shares are of
that sum. Prints one JSON line: seconds per iteration (untraced and traced), the FLOPs per
iteration (gan_jax/flops.py), and per kind the milliseconds per iteration and share; with the
products' FLOPs over their own time (`products_tflops_per_s`: the rate of the products alone);
`--top=N` lists the N costliest instructions with their shapes.
"""

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# XLA:CPU's per-thunk trace events; read when the backend starts, so before any JAX use.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_enable_xprof_traceme=true')

import benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position  (its flags too)
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('top', 0, 'Also list the TOP costliest instructions (name, kind, shapes, '
                     'ms per iteration).')

PRODUCTS = ('products (mkl custom call)', 'products (XLA dot, convolution)')
_SHAPE_OPS = {'parameter', 'constant', 'bitcast', 'reshape', 'broadcast', 'tuple',
              'get-tuple-element', 'iota'}
_MOVES = {'concatenate', 'slice', 'pad', 'dynamic-slice', 'dynamic-update-slice', 'gather',
          'scatter', 'reverse'}


def hlo_instructions(hlo: str):
  """{instruction name: (opcode, {opcodes of what it calls}, custom-call target)} of an HLO
  module's text, fusions resolved to the opcodes of their fused computation."""
  computations, current, rows = {}, None, {}
  for line in hlo.splitlines():
    head = re.match(r'^\s*(?:ENTRY )?%?([\w.\-]+) \(.*\{\s*$', line)
    if head and ' = ' not in line:
      current = computations.setdefault(head.group(1), set())
      continue
    m = re.match(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][\w\-]*)\(', line)
    if not m:
      continue
    if current is not None:
      current.add(m.group(2))
    calls = re.search(r'calls=%?([\w.\-]+)', line)
    target = re.search(r'custom_call_target="([^"]+)"', line)
    rows[m.group(1)] = (m.group(2), calls.group(1) if calls else None,
                        target.group(1) if target else None, _signature(line))
  return {name: (op, computations.get(calls, set()), target, signature)
          for name, (op, calls, target, signature) in rows.items()}


def _signature(line: str) -> str:
  """An HLO instruction's result shape, a custom call's operand shapes, and where it comes from
  (the end of its op_name), e.g. 'f32[1024,512] <- bf16[1024,4096], bf16[4096,512]
  jvp(ConvCritic)/Conv_2/ffi_call'."""
  result = re.search(r'= (\w+\[[\d,]*\])', line)
  operands = re.search(r'operand_layout_constraints=\{([^}]*)\}', line)
  operands = re.sub(r'\{[\d,]*\}', '', operands.group(1)) if operands else ''
  where = re.search(r'op_name="([^"]*)"', line)
  where = '/'.join(where.group(1).split('/')[-3:]) if where else ''
  trans = ' '.join(f'{t}' for t in re.findall(r'trans_[ab] = true', line))
  return ' '.join(filter(None, [result.group(1) if result else '?',
                                f'<- {operands}' if operands else '', trans, where]))


def kind(op: str, called: set, target) -> str:
  """The kind of work of one HLO instruction (see the module's docstring)."""
  from gan_jax import mkl_gemm  # pylint: disable=g-import-not-at-top
  if op == 'custom-call':
    return PRODUCTS[0] if target == mkl_gemm.TARGET else f'custom call {target}'
  ops = ({op} if op != 'fusion' else set()) | (called - _SHAPE_OPS)
  if ops & {'dot', 'convolution'}:
    return PRODUCTS[1]
  if ops & _MOVES:
    return 'slices, pads, concatenations (im2col, col2im)'
  if 'reduce' in ops or 'reduce-window' in ops:
    return 'reductions (batch-norm statistics, sums)'
  if ops <= {'convert', 'bitcast-convert', 'copy', 'transpose'}:
    return 'converts, copies, transposes'
  return 'elementwise (normalisation, activations, optimizer, losses)'


def profile(config, steps: int, top: int = 0) -> dict:
  """The JSON row of the module's docstring for `config` (benchmark.py's bare step)."""
  import jax  # pylint: disable=g-import-not-at-top
  bare = benchmark._Bare(config)  # pylint: disable=protected-access
  bare.seconds_per_iter(2)
  untraced = bare.seconds_per_iter(steps)
  n, b = config.n_critic, config.batch_size
  flops = bare.stepper.call_flops(bare.k, n, b, 'uint8', True) / bare.k
  # the bare step's batch has labels (benchmark._Bare): the program it runs
  instructions = hlo_instructions(
      bare.stepper.lower(bare.k, n, b, 'uint8', True).compile().as_text())
  with tempfile.TemporaryDirectory() as out:
    with jax.profiler.trace(out, create_perfetto_trace=True):
      traced = bare.seconds_per_iter(steps)
    with gzip.open(glob.glob(f'{out}/**/*.trace.json.gz', recursive=True)[0]) as f:
      events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  each = collections.Counter()   # (instruction, kind, shapes) -> seconds
  for e in events:
    name = e.get('name', '')
    # thunks only (the runtime's own events are not instructions); a while, call or
    # conditional is counted through its body's thunks
    if e.get('ph') == 'X' and 'dur' in e and name in instructions:
      op, called, target, signature = instructions[name]
      if op not in ('while', 'call', 'conditional'):
        each[(name, kind(op, called, target), signature)] += e['dur'] * 1e-6
  times = collections.Counter()
  for (_, k, _), seconds in each.items():
    times[k] += seconds
  total = sum(times.values())
  product_seconds = sum(times[k] for k in PRODUCTS)
  return {
      'seconds_per_iter': round(untraced, 4), 'seconds_per_iter_traced': round(traced, 4),
      'gflop_per_iter': round(flops / 1e9, 2),
      'thunk_ms_per_iter': round(total / steps * 1e3, 1),
      'products_tflops_per_s': round(flops / (product_seconds / steps) / 1e12, 3)
                               if product_seconds else None,
      'kinds': {k: {'ms_per_iter': round(v / steps * 1e3, 1), 'share': round(v / total, 3)}
                for k, v in times.most_common()},
      'top': [{'instruction': name, 'kind': k, 'shapes': signature,
               'ms_per_iter': round(v / steps * 1e3, 2)}
              for (name, k, signature), v in each.most_common(top)],
  }


def main(_):
  print(json.dumps(profile(benchmark.FLAGS.config, benchmark.FLAGS.steps, FLAGS.top)))


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  app.run(main)      # benchmark.py's flags: --config (and --config.*), --steps
