"""Runs an iterator a few items ahead on a thread: the training loop's next batches are
assembled and sent to the devices while the current compiled call runs.

The items come out in the iterator's order; an exception raised by the iterator is raised by
`next` where the consumer would have got that item.
"""

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar('T')

_END = object()  # the iterator is exhausted


class _Raised:
  def __init__(self, error: BaseException):
    self.error = error


class Prefetcher(Iterator[T]):
  """Iterates over `iterator` on a daemon thread, holding at most `size` items ready."""

  def __init__(self, iterator: Iterator[T], size: int = 2):
    self._queue = queue.Queue(maxsize=size)
    self._closed = threading.Event()
    self._done = False
    self._thread = threading.Thread(target=self._produce, args=(iterator,), daemon=True,
                                    name='prefetch')
    self._thread.start()

  def _put(self, item) -> bool:
    """Puts `item` once there is room; False if closed meanwhile."""
    while not self._closed.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _produce(self, iterator) -> None:
    try:
      for item in iterator:
        # Checked before the next item is made as well: close() drains the queue, which
        # lets a put through, and the item after it would be made for nothing.
        if not self._put(item) or self._closed.is_set():
          return
    except BaseException as e:  # pylint: disable=broad-except  (handed to the consumer)
      self._put(_Raised(e))
      return
    self._put(_END)

  def __next__(self) -> T:
    if self._done:
      raise StopIteration
    item = self._queue.get()
    if item is _END or isinstance(item, _Raised):
      self._done = True
      if item is _END:
        raise StopIteration
      raise item.error
    return item

  def close(self) -> None:
    """Stops the thread and drops what it made ahead (the items are never consumed)."""
    self._closed.set()
    self._done = True
    while True:
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout=10)
