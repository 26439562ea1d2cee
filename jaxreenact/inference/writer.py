"""Output files written behind the device work: a `Writer` runs a consumer of a stream of items (a video encoder,
PNG writes) in its own thread, fed through a bounded queue, so the main thread goes back to the devices as soon as
a batch's results are on the host."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

_END = object()


class Writer:
    """`consume(items)` (e.g. `lambda fr: write_video(path, fr)`) in a background thread; `put` feeds it, `close`
    ends the stream and returns what `consume` returned. An error in the thread is raised again by the next `put`
    or by `close` (the thread then drains the queue, so `put` never blocks on a dead consumer)."""

    def __init__(self, consume: Callable[[Iterable], object], depth: int = 64, name: str = "writer"):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._consume = consume
        self._error: BaseException | None = None
        self._result = None
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _items(self) -> Iterator:
        while True:
            item = self._q.get()
            if item is _END:
                self._ended = True
                return
            yield item

    def _run(self):
        try:
            self._result = self._consume(self._items())
        except BaseException as e:  # handed to the producer
            self._error = e
        while not self._ended:  # what the consumer left (or everything, after an error)
            self._ended = self._q.get() is _END

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self):
        """End the stream, wait for the consumer, and return its result (or raise its error)."""
        self._q.put(_END)
        try:
            self._thread.join()
        except BaseException:  # a signal while waiting: what was computed is still written before it goes on
            self._thread.join()
            raise
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self) -> None:
        """End the stream without raising (cleanup after the producer failed)."""
        self._q.put(_END)
        self._thread.join()


def each(fn: Callable) -> Callable[[Iterable], int]:
    """A consumer that calls `fn(item)` on every item (e.g. one PNG per frame); returns the count."""

    def consume(items: Iterable) -> int:
        n = 0
        for item in items:
            fn(item)
            n += 1
        return n

    return consume
