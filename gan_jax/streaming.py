"""Images decoded when they are read, for datasets larger than host memory.

`OnDemand` stands where a loader's uint8 array [N, H, W, C] would: BatchStream indexes it with
this process's rows of each batch (so a host decodes only its share), the evaluator slices it
in chunks. Indexing decodes those images on a thread pool (PIL releases the GIL while it
decodes and resizes) and keeps nothing, so memory holds the file list and the batches in
flight, not the dataset. The stream's order is BatchStream's (a permutation per epoch from the
seed, an integer position saved in each checkpoint): the batches of a streamed dataset are the
ones the same dataset in memory gives, and a resumed run sees exactly the batches an
uninterrupted one would.

`choose` decides dataset.storage 'auto': in memory when the decoded images take at most a
quarter of this host's memory (its cgroup limit where that is lower), else streamed.
"""

import concurrent.futures
import os
import threading
from typing import Callable, Optional, Sequence, Tuple

from absl import logging
import numpy as np

from gan_jax.errors import DataError

STORAGES = ('auto', 'memory', 'stream')  # dataset.storage
MEMORY_SHARE = 0.25  # auto: decoded images may take this share of the host's memory


class _Groups:
  """Where to look for a stand-in: the indices of each group (equal `groups`) in index order,
  held as one ordering and each group's bounds in it (about 12 bytes per image); None: one
  group of every index, held as nothing."""

  def __init__(self, groups: Optional[np.ndarray], length: int):
    self.length = length
    if groups is None:
      self.order = None
      return
    groups = np.asarray(groups)
    self.order = np.argsort(groups, kind='stable').astype(np.int64)
    sorted_groups = groups[self.order]
    self.starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    self.ends = np.r_[self.starts[1:], length]
    self.group = np.empty(length, np.int32)  # index -> its group's number
    self.group[self.order] = np.repeat(np.arange(len(self.starts), dtype=np.int32),
                                       self.ends - self.starts)

  def after(self, i: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    """The other indices of i's group, from the one after i on (wrapping around), and the
    group's first and last index."""
    if self.order is None:
      return (i + np.arange(1, self.length)) % self.length, (0, self.length - 1)
    g = self.group[i]
    members = self.order[self.starts[g]:self.ends[g]]
    p = int(np.searchsorted(members, i))  # members are in index order
    return np.roll(members, -p)[1:], (int(members[0]), int(members[-1]))


class OnDemand:
  """A uint8 array [N, *image_shape] whose images `read` decodes when they are indexed.

  `read(indices)` returns the images at those indices (a list), None for one it cannot
  decode; such an image is replaced by the next readable one of its group (equal `groups`: a
  folder's or a dataset's labels; the indices of a group in order, wrapping around), the same
  on every read and every host, with one warning per image. (Folders loaded in memory leave
  such files out instead: the two give the same batches when every file decodes.)
  `name(i)` says which image i is (a file's path) in warnings and errors.
  """

  def __init__(self, read: Callable[[np.ndarray], Sequence[Optional[np.ndarray]]],
               length: int, image_shape: Sequence[int], name: Callable[[int], str],
               workers: int = 0, groups: Optional[np.ndarray] = None):
    self._read, self._name = read, name
    self._groups = _Groups(groups, length)
    self.shape = (length, *(int(s) for s in image_shape))
    self.dtype, self.ndim = np.dtype(np.uint8), len(self.shape)
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix='decode')
    self._tasks = 4 * workers
    self._bad, self._lock = set(), threading.Lock()

  def __len__(self) -> int:
    return self.shape[0]

  def _unreadable(self, k: int) -> None:
    with self._lock:
      new = k not in self._bad
      self._bad.add(k)
    if new:
      logging.warning('cannot read %s; the next readable image stands in for it',
                      self._name(k))

  def _stand_in(self, i: int) -> np.ndarray:
    """The next readable image after the unreadable image i in its group."""
    self._unreadable(i)
    others, (first, last) = self._groups.after(i)
    for k in others:
      pixels = self._read(np.array([k]))[0]
      if pixels is not None:
        return pixels
      self._unreadable(int(k))
    raise DataError(f'none of the {len(others) + 1} images of the group from '
                    f'{self._name(first)} to {self._name(last)} can be decoded')

  def __getitem__(self, key) -> np.ndarray:
    if isinstance(key, slice):
      key = np.arange(*key.indices(len(self)))
    index = np.asarray(key)
    if index.dtype.kind not in 'iu':
      raise TypeError(f'OnDemand takes integer indices or a slice, got {index.dtype}')
    if index.size and (index.min() < -len(self) or index.max() >= len(self)):
      raise IndexError(f'index out of range for {len(self)} images')
    flat = np.where(index < 0, index + len(self), index).ravel()
    out = np.empty((flat.size, *self.shape[1:]), np.uint8)

    def decode(rows):  # a run of rows per task: fewer futures than images, batched reads
      for n, pixels in zip(rows, self._read(flat[rows]), strict=True):
        out[n] = self._stand_in(int(flat[n])) if pixels is None else pixels

    runs = [rows for rows in np.array_split(np.arange(flat.size), self._tasks) if rows.size]
    list(self._pool.map(decode, runs))
    return out.reshape(index.shape + self.shape[1:])


def materialise(images: OnDemand, chunk: int = 8192) -> np.ndarray:
  """All the images of `images` decoded into one array, `chunk` at a time."""
  out = np.empty(images.shape, np.uint8)
  for start in range(0, len(images), chunk):
    out[start:start + chunk] = images[start:start + chunk]
  return out


def _cgroup_limit_files():
  """The memory-limit files of this process's own cgroups (v1 and v2), then those at the
  mount roots (a container's own limit, where /proc/self/cgroup names the host's path)."""
  try:
    with open('/proc/self/cgroup') as f:
      lines = f.read().splitlines()
  except OSError:
    return []
  found = []
  for line in lines:
    _, controllers, path = line.split(':', 2)
    if 'memory' in controllers.split(','):
      found.append(f'/sys/fs/cgroup/memory{path.rstrip("/")}/memory.limit_in_bytes')
    elif controllers == '':
      found.append(f'/sys/fs/cgroup{path.rstrip("/")}/memory.max')
  return found + ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max']


def host_memory_bytes() -> int:
  """This host's memory, or the memory limit of this process's cgroup where that is lower."""
  total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  for path in _cgroup_limit_files():
    try:
      with open(path) as f:
        text = f.read().strip()
    except OSError:
      continue
    if text.isdigit():
      total = min(total, int(text))
  return total


def choose(storage: str, num_images: int, image_shape: Tuple[int, ...], source: str) -> str:
  """'memory' or 'stream' for dataset.storage, logging which and why."""
  decoded = num_images * int(np.prod(image_shape))
  if storage != 'auto':
    logging.info('%s: %d images (%.2f GB decoded), dataset.storage %r', source, num_images,
                 decoded / 1e9, storage)
    return storage
  budget = int(MEMORY_SHARE * host_memory_bytes())
  chosen = 'memory' if decoded <= budget else 'stream'
  logging.info('%s: %d images take %.2f GB decoded, %s a quarter of this host\'s memory '
               '(%.2f GB): dataset.storage auto -> %r', source, num_images, decoded / 1e9,
               'within' if chosen == 'memory' else 'over', budget / 1e9, chosen)
  return chosen
