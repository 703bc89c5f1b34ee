"""The workdir of a run (local or gs://): its config.json and data_spec.json, resume checks,
and a writability check.

Every check here runs before anything is written, so a refused run leaves the workdir as it was.
"""

import json
import os
import tempfile
from typing import Optional

import ml_collections

from gan_jax import fields, files, gans
from gan_jax.errors import ConfigError
from gan_jax.input_pipeline import DataSpec

# How the GAN is chosen: compared by meaning (gans.resolve_fields), in this order.
GRID_FIELDS = ('loss.adversarial', 'loss.lipschitz', 'model.conditional', 'acgan_adversarial')


def config_path(workdir: str) -> str:
  return str(files.path(workdir) / 'config.json')


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir's run was started with (its config.json)."""
  try:
    return ml_collections.ConfigDict(json.loads(files.path(config_path(workdir)).read_text()))
  except FileNotFoundError:
    raise ConfigError(f'{workdir} has no config.json: give --config, or train there first'
                      ) from None
  except (OSError, ValueError) as e:
    raise ConfigError(f'cannot read {config_path(workdir)} ({e}); give --config') from None


def _flatten(tree, prefix=''):
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def check_resume_config(config, workdir: str) -> None:
  """Raises ConfigError naming the fields where `config` differs from the workdir's run."""
  if not files.path(config_path(workdir)).exists():
    return
  old = {**fields.absent_means(), **_flatten(load_config(workdir).to_dict())}
  new = _flatten(json.loads(config.to_json_best_effort()))
  # Which fields a resume may change, and what a field missing from an old config.json means:
  # gan_jax/fields.py. Other missing fields are not compared.
  differ = sorted(k for k in set(old) | set(new)
                  if not fields.resumable(k) and k not in GRID_FIELDS
                  and k in old and old.get(k) != new.get(k))
  # The GAN's grid point may be written in its newer or older fields: compare what they mean.
  try:
    old_gan, new_gan = (gans.resolve_fields(c.get('gan'), *(c.get(f, '') for f in GRID_FIELDS))
                        for c in (old, new))
  except ConfigError:
    old_gan = new_gan = None  # an unknown gan: named by the 'gan' field's difference, or refused
  if old_gan != new_gan:  # named by the fields as the user writes them, not the resolved spec
    changed = [f'{k} {old.get(k, "")!r} -> {new.get(k, "")!r}' for k in ('gan', *GRID_FIELDS)
               if old.get(k, '') != new.get(k, '')]
    differ.append(f'the GAN ({"; ".join(changed)})')
  if differ:
    shown = ', '.join(k if k.startswith('the GAN') else f'{k} ({old.get(k)!r} -> {new.get(k)!r})'
                      for k in differ[:6])
    shown += f' and {len(differ) - 6} more' if len(differ) > 6 else ''
    # The flags that give the run's own settings back (e.g. after a preset's default changed).
    restore = [k for k in differ if not k.startswith('the GAN')]
    if old_gan != new_gan:
      restore += [k for k in ('gan', *GRID_FIELDS) if old.get(k, '') != new.get(k, '')]
    flags = ' '.join(f'--config.{k}={_flag_value(old.get(k, ""))}'
                     for k in dict.fromkeys(restore))
    raise ConfigError(f'{workdir} holds a run with another config; differing fields: {shown}. '
                      f'Use a new --workdir, or the run\'s own settings: {flags}')


def _flag_value(value) -> str:
  """`value` as a --config.FIELD=VALUE flag writes it (a shell word)."""
  text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
  return text if text and all(c.isalnum() or c in '._-+:/' for c in text) else repr(text)


def check_writable(workdir: str, what: str = 'workdir', setting: str = '--workdir') -> None:
  """Raises ConfigError unless `workdir` exists as a writable directory or can be created
  (`what` and `setting` name it in the message: e.g. 'the statistics cache', eval.stats_dir).

  Creates nothing: it probes the nearest existing ancestor. A gs:// (remote) path cannot be
  probed without writing: its bucket must exist and the path must not be a file.
  """
  if not files.is_local(workdir):
    _check_remote(workdir, what, setting)
    return
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    raise ConfigError(f'cannot create {what} {workdir}: {path} is a file, not a directory; '
                      f'choose another {setting}')
  try:
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise ConfigError(f'cannot write to {what} {workdir} ({e.strerror} in {path}); '
                      f'choose a {setting} you can write to') from None


def _check_remote(workdir: str, what: str, setting: str) -> None:
  """check_writable of a gs:// path: its bucket exists (a request that fails names why), and
  neither the path nor a folder above it is a file."""
  bucket = files.root(workdir)
  try:
    if not files.path(bucket).exists():
      raise ConfigError(f'cannot write to {what} {workdir}: bucket {bucket} does not exist; '
                        f'create it or choose another {setting}')
    path = files.path(workdir)
    while str(path) != bucket and not path.exists():
      path = path.parent
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (no network, no permission, ...)
    reason = ' '.join(str(e).split())[:160] or type(e).__name__
    raise ConfigError(f'cannot reach {what} {workdir} ({type(e).__name__}: {reason}); check '
                      f'the bucket and your credentials, or choose another {setting}') from None
  if str(path) != bucket and not path.is_dir():
    raise ConfigError(f'cannot create {what} {workdir}: {path} is a file, not a directory; '
                      f'choose another {setting}')


def spec_path(workdir: str) -> str:
  return str(files.path(workdir) / 'data_spec.json')


def write_spec(workdir: str, spec: DataSpec) -> None:
  """Writes data_spec.json: the image shape and classes (with their names, where the data has
  them) the run's generator makes, so that sampling and evaluation need neither the training
  data nor its files."""
  record = {'image_shape': [int(n) for n in spec.image_shape],
            'num_classes': int(spec.num_classes)}
  if spec.class_names:
    record['class_names'] = list(spec.class_names)
  files.write_text(spec_path(workdir), json.dumps(record))


def read_spec(workdir: str) -> Optional[DataSpec]:
  """The data spec in data_spec.json, or None for a workdir without one (runs from before it
  was written); one without class names (older runs, unnamed classes) has none."""
  try:
    spec = json.loads(files.path(spec_path(workdir)).read_text())
    return DataSpec(tuple(spec['image_shape']), int(spec['num_classes']),
                    tuple(str(name) for name in spec.get('class_names', ())))
  except (FileNotFoundError, NotADirectoryError):  # no run there (check_writable says more)
    return None
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ConfigError(f'cannot read {spec_path(workdir)} ({e}); move it away to read the '
                      f'shape from the data') from None


def check_resume_shape(image_shape, workdir: str) -> None:
  """Raises ConfigError when the workdir's run trained on images of another shape than
  `image_shape` (dataset.image_size and channels may be restated, not changed)."""
  recorded = read_spec(workdir)
  if recorded and tuple(recorded.image_shape) != tuple(image_shape):
    shape = lambda s: 'x'.join(map(str, s))
    raise ConfigError(f'{workdir} holds a run trained on {shape(recorded.image_shape)} images; '
                      f'this config gives {shape(image_shape)}: set dataset.image_size and '
                      f'dataset.channels as the run had them, or use a new --workdir')


def write_config(config, workdir: str) -> None:
  """Writes config.json (atomically: a crash never leaves half a file)."""
  files.write_text(config_path(workdir), config.to_json_best_effort(indent=2))
