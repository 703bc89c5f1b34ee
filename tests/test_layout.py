"""The package's shape: gan_jax's modules import each other without a cycle, data flows one
way, and the evaluator and sampling never reach the trainer."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, 'gan_jax')


def _imports():
  """module -> the gan_jax modules it imports (anywhere in the file)."""
  graph = {}
  for name in sorted(os.listdir(PACKAGE)):
    if not name.endswith('.py') or name == '__init__.py':
      continue
    with open(os.path.join(PACKAGE, name)) as f:
      tree = ast.parse(f.read())
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == 'gan_jax':
        deps |= {a.name for a in node.names}
      elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('gan_jax.'):
        deps.add(node.module.split('.')[1])
      elif isinstance(node, ast.Import):
        deps |= {a.name.split('.')[1] for a in node.names if a.name.startswith('gan_jax.')}
    graph[name[:-3]] = deps
  return graph


def _reach(graph, start):
  seen, todo = set(), [start]
  while todo:
    for dep in graph[todo.pop()]:
      if dep not in seen:
        seen.add(dep)
        todo.append(dep)
  return seen


def test_no_import_cycle():
  graph = _imports()
  assert set().union(*graph.values()) <= set(graph), 'an import of a module that is not there'
  for module in graph:
    assert module not in _reach(graph, module), f'{module} imports itself through others'


def test_evaluation_and_sampling_sit_beside_the_loop():
  graph = _imports()
  for module in ('evaluator', 'extractors', 'feature_metrics', 'sampling', 'stepper', 'steps',
                 'checks'):
    assert not {'trainer', 'modes'} & _reach(graph, module), module
  assert not {'stepper', 'steps', 'trainer'} & _reach(graph, 'evaluator')
  # Only the modes assemble the trainer, and nothing below main.py imports the modes.
  assert [m for m in graph if 'trainer' in graph[m]] == ['modes']
  assert not [m for m in graph if 'modes' in graph[m]]
