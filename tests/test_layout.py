"""The package's shape: gan_jax's modules import each other without a cycle, data flows one
way, and the evaluator and sampling never reach the trainer."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, 'gan_jax')


def _files():
  """The package's files as paths under gan_jax/ ('aot.py', 'models/conv.py', ...), its own
  empty __init__.py aside."""
  found = []
  for folder, _, names in os.walk(PACKAGE):
    found += [os.path.relpath(os.path.join(folder, n), PACKAGE) for n in names
              if n.endswith('.py')]
  return sorted(f for f in found if f != '__init__.py')


def _module(path: str) -> str:
  """'aot.py' -> 'aot', 'models/conv.py' -> 'models.conv', 'models/__init__.py' -> 'models'."""
  return path[:-3].replace(os.sep, '.').removesuffix('.__init__')


def _imports():
  """module -> the gan_jax modules it imports (anywhere in the file); a subpackage's modules
  are named with a dot ('models.conv'), its __init__.py by the package ('models')."""
  files = _files()
  modules = {_module(f) for f in files}
  graph = {}
  for path in files:
    with open(os.path.join(PACKAGE, path)) as f:
      tree = ast.parse(f.read())
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'gan_jax':
        package = node.module[len('gan_jax.'):]  # '' for gan_jax itself
        for a in node.names:  # a submodule, or a name the module (package) defines
          name = f'{package}.{a.name}' if package else a.name
          deps.add(name if name in modules or not package else package)
      elif isinstance(node, ast.Import):
        deps |= {a.name[len('gan_jax.'):] for a in node.names if a.name.startswith('gan_jax.')}
    graph[_module(path)] = deps
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
  for module in ('evaluator', 'extractors', 'feature_metrics', 'sampling', 'stepper', 'updates',
                 'checks', 'neighbours', 'interpolation'):
    assert not {'trainer', 'modes'} & _reach(graph, module), module
  assert not {'stepper', 'updates', 'trainer'} & _reach(graph, 'evaluator')
  # Only the modes assemble the trainer, and nothing below main.py imports the modes.
  assert [m for m in graph if 'trainer' in graph[m]] == ['modes']
  assert not [m for m in graph if 'modes' in graph[m]]


def _listed(page: str):
  """The modules and scripts docs/layout.md names: gan_jax/NAME.py and gan_jax/PACKAGE/NAME.py,
  and NAME.py / NAME.sh in its experiments/ entry."""
  import re  # pylint: disable=g-import-not-at-top
  with open(os.path.join(ROOT, 'docs', page)) as f:
    text = f.read()
  modules = set(re.findall(r'gan_jax/((?:\w+/)*\w+\.py)', text))
  block = text[text.index('experiments/ '):text.index('tests/ ')]
  scripts = set(re.findall(r'(\w+\.(?:py|sh))', block))
  return modules, scripts


def test_the_layout_page_lists_every_module_and_script_and_nothing_else():
  modules, scripts = _listed('layout.md')
  present = set(_files())
  experiments = {n for n in os.listdir(os.path.join(ROOT, 'experiments'))
                 if n.endswith(('.py', '.sh')) and n != '__init__.py'}
  assert modules == present, (sorted(present - modules), sorted(modules - present))
  assert scripts == experiments, (sorted(experiments - scripts), sorted(scripts - experiments))


def test_links_between_the_docs_resolve():
  """Every relative link of the README and docs/ points at a file that exists."""
  import re  # pylint: disable=g-import-not-at-top
  pages = ['README.md'] + [os.path.join('docs', n) for n in os.listdir(os.path.join(ROOT, 'docs'))
                           if n.endswith('.md')]
  broken = []
  for page in pages:
    with open(os.path.join(ROOT, page)) as f:
      for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', f.read()):
        if not target.startswith(('http://', 'https://')) and not os.path.exists(
            os.path.join(ROOT, os.path.dirname(page), target)):
          broken.append(f'{page}: {target}')
  assert not broken, broken
