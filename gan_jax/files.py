"""Paths the project reads and writes: local, or gs:// (anything etils.epath opens).

On a TPU VM workdirs, data and caches live in Cloud Storage, so every path goes through
etils.epath (tf.io.gfile under it when TensorFlow is installed). Nothing here turns a gs:// path
into a local one: `os.path.abspath('gs://b/run')` is './gs:/b/run'.
"""

import contextlib
import io
import os
import uuid
from typing import IO, Iterator, Union

from etils import epath

PathLike = Union[str, os.PathLike]


def is_local(path: PathLike) -> bool:
  """Whether `path` is on this machine's file system (no scheme://)."""
  return '://' not in os.fspath(path)


def path(name: PathLike) -> epath.Path:
  """`name` as an epath.Path (gs://... stays gs://...)."""
  return epath.Path(name)


def absolute(name: PathLike) -> str:
  """A local path made absolute (what users see in reports); a gs:// path as it is."""
  return str(epath.Path(name).resolve()) if is_local(name) else os.fspath(name)


def root(name: PathLike) -> str:
  """The bucket of a remote path ('gs://bucket/run' -> 'gs://bucket')."""
  scheme, rest = os.fspath(name).split('://', 1)
  return f'{scheme}://{rest.split("/", 1)[0]}'


def ensure_parent(name: PathLike) -> None:
  """Creates the directory a file is about to be written into."""
  path(name).parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def open_seekable(name: PathLike) -> Iterator[IO[bytes]]:
  """A binary file open for reading that seeks cheaply (what np.load of an .npz needs): the file
  itself when local, its bytes in memory when remote (each seek of a remote file is a request)."""
  if is_local(name):
    with path(name).open('rb') as f:
      yield f
  else:
    yield io.BytesIO(path(name).read_bytes())


def write_bytes(name: PathLike, data: bytes, atomic: bool = True) -> None:
  """Writes `data` to `name`, creating its directory. `atomic`: under a name of this writer's
  own, then renamed, so a reader (or another writer) of `name` sees no file or a whole one (on
  Cloud Storage, where objects appear whole anyway, the rename is a copy and a delete)."""
  target = path(name)
  ensure_parent(target)
  if not atomic:
    target.write_bytes(data)
    return
  tmp = target.parent / f'{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp'
  try:
    tmp.write_bytes(data)
    tmp.replace(target)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text(name: PathLike, text: str, atomic: bool = True) -> None:
  write_bytes(name, text.encode('utf-8'), atomic)
