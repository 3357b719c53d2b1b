"""Server-side batching, as TF Serving's ``--enable_batching`` does it.

Requests for the same servable, signature, dtypes and per-row shapes join an
open batch; the batch runs when it holds ``max_batch_size`` rows, or when
``batch_timeout_micros`` have passed since its first request and one of the
``num_batch_threads`` batch threads is free (so with a timeout of 0 a batch
takes whatever arrived while the threads were busy). The rows are concatenated
along axis 0, padded to the next of ``allowed_batch_sizes`` with copies of the
first row, run as one call and split back.

TF Serving's behaviour is kept where a client can see it: a request larger than
``max_batch_size`` is INVALID_ARGUMENT ("Task size N is larger than maximum
batch size M"), and beyond ``max_enqueued_batches`` waiting batches
UNAVAILABLE ("The batch scheduling queue to which this task was submitted is
full"). One difference: requests whose shapes differ go to different batches
here instead of failing to concatenate.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genimg_serving.configs import ConfigError
from genimg_serving.errors import (
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    ServingError,
    UnavailableError,
)


@dataclass(frozen=True)
class BatchingOptions:
    """BatchingParameters; the defaults are TF Serving's (--enable_batching without a file)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"batching: {name} must be at least 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ConfigError(f"batching: batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != self.max_batch_size):
            raise ConfigError(
                f"batching: allowed_batch_sizes {sizes} must increase and end at max_batch_size"
                f" ({self.max_batch_size})")

    def describe(self) -> str:
        text = (f"max_batch_size {self.max_batch_size}, batch_timeout_micros {self.batch_timeout_micros},"
                f" num_batch_threads {self.num_batch_threads}, max_enqueued_batches {self.max_enqueued_batches}")
        if self.allowed_batch_sizes:
            text += f", allowed_batch_sizes {list(self.allowed_batch_sizes)}"
        return text


def read_batching_parameters(path: Path) -> BatchingOptions:
    """A batching_parameters.txt (TF Serving's --batching_parameters_file) as options."""
    from google.protobuf import text_format

    from genimg_serving.config_protos import batching_parameters_class

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read batching parameters {path}: {e.strerror}") from e
    try:
        params = text_format.Parse(text, batching_parameters_class()())
    except text_format.ParseError as e:
        raise ConfigError(f"{path} is not TF Serving's BatchingParameters: {e}") from e
    if params.pad_variable_length_inputs:
        raise ConfigError(f"{path}: pad_variable_length_inputs is not supported by the local server")
    given = {name: getattr(params, name).value
             for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
             if params.HasField(name)}
    return BatchingOptions(**given, allowed_batch_sizes=tuple(params.allowed_batch_sizes))


class _Task:
    """One request waiting for its batch."""

    __slots__ = ("inputs", "size", "done", "outputs", "error")

    def __init__(self, inputs: dict, size: int):
        self.inputs, self.size = inputs, size
        self.done = threading.Event()
        self.outputs: dict | None = None
        self.error: ServingError | None = None


class _Batch:
    def __init__(self, key, run, deadline: float, model: str):
        self.key, self.run, self.deadline, self.model = key, run, deadline, model
        self.tasks: list[_Task] = []
        self.size = 0


class Batcher:
    """The batch queues and threads shared by all servables of one server."""

    def __init__(self, options: BatchingOptions):
        self.options = options
        self._cond = threading.Condition()
        self._open: dict = {}  # key -> the _Batch being filled
        self._full: deque[_Batch] = deque()  # closed, waiting for a thread
        self._stopping = True  # until start()
        self._threads: list[threading.Thread] = []
        self._processed: dict[str, list[int]] = {}  # model -> [batches, rows, padding rows]

    def start(self) -> None:
        """Start the batch threads (again, after ``stop``)."""
        self.stop()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"genimg-batch-{i}", daemon=True)
                         for i in range(self.options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, key, inputs: dict[str, np.ndarray], run, model: str = "") -> dict[str, np.ndarray]:
        """``run(inputs)``, batched with other requests of the same ``key`` where possible
        (``model`` names the batches in ``processed()``)."""
        size = rows(inputs)
        if size is None:
            return run(inputs)
        if size > self.options.max_batch_size:
            raise InvalidArgumentError(
                f"Task size {size} is larger than maximum batch size {self.options.max_batch_size}")
        task = _Task(inputs, size)
        with self._cond:
            self._add((key, _layout(inputs)), task, run, model)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def _add(self, key, task: _Task, run, model: str) -> None:
        if self._stopping:
            raise UnavailableError("batching is stopped (the server is not running)")
        wake = 0  # batch threads to wake: one per batch closed or opened (a new deadline)
        try:
            batch = self._open.get(key)
            if batch is not None and batch.size + task.size > self.options.max_batch_size:
                self._full.append(self._open.pop(key))
                batch, wake = None, wake + 1
            if batch is None:
                if sum(b.key == key for b in self._full) + 1 > self.options.max_enqueued_batches:
                    raise UnavailableError("The batch scheduling queue to which this task was submitted is full")
                deadline = time.monotonic() + self.options.batch_timeout_micros / 1e6
                batch = self._open[key] = _Batch(key, run, deadline, model)
                wake += 1
            batch.tasks.append(task)
            batch.size += task.size
            if batch.size == self.options.max_batch_size:
                self._full.append(self._open.pop(key))
                wake += 1
        finally:
            if wake:
                self._cond.notify(wake)

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next()
                while batch is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._seconds_to_deadline())
                    batch = self._next()
            self._process(batch)

    def _next(self) -> _Batch | None:
        """A full batch, else the open batch whose timeout passed first (any, when stopping)."""
        if self._full:
            return self._full.popleft()
        if not self._open:
            return None
        key = min(self._open, key=lambda k: self._open[k].deadline)
        if self._stopping or self._open[key].deadline <= time.monotonic():
            return self._open.pop(key)
        return None

    def _seconds_to_deadline(self) -> float | None:
        if not self._open:
            return None
        return max(0.0, min(b.deadline for b in self._open.values()) - time.monotonic())

    def _process(self, batch: _Batch) -> None:
        try:
            padded = self._padded_size(batch.size)
            outputs = batch.run(merge([t.inputs for t in batch.tasks], padded))
            for task, part in zip(batch.tasks, split(outputs, [t.size for t in batch.tasks], padded)):
                task.outputs = part
            with self._cond:
                counts = self._processed.setdefault(batch.model, [0, 0, 0])
                counts[0] += 1
                counts[1] += batch.size
                counts[2] += padded - batch.size
        except ServingError as e:
            for task in batch.tasks:
                task.error = e
        except Exception as e:  # a bug: fail this batch's requests, keep the thread
            for task in batch.tasks:
                task.error = InternalError(f"{type(e).__name__}: {e}")
        finally:
            for task in batch.tasks:
                task.done.set()

    def processed(self) -> dict[str, tuple[int, int, int]]:
        """Per model: batches run, rows in them, padding rows added."""
        with self._cond:
            return {model: tuple(counts) for model, counts in self._processed.items()}

    def _padded_size(self, size: int) -> int:
        return next((s for s in self.options.allowed_batch_sizes if s >= size), size)

    def stop(self, timeout: float = 30.0) -> None:
        """Run what is queued, then end the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)


def rows(inputs: dict[str, np.ndarray]) -> int | None:
    """The batch size all inputs share on axis 0, or None when they cannot be batched."""
    sizes = {a.shape[0] if a.ndim else None for a in inputs.values()}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        return None
    return sizes.pop()


def _layout(inputs: dict[str, np.ndarray]) -> tuple:
    """What must match for requests to share a batch: names, dtypes, per-row shapes."""
    return tuple(sorted((k, a.dtype.str, a.shape[1:]) for k, a in inputs.items()))


def merge(parts: list[dict[str, np.ndarray]], padded: int) -> dict[str, np.ndarray]:
    """Concatenate each input along axis 0; pad with copies of the first row up to ``padded``."""
    merged = {}
    for name in parts[0]:
        arrays = [p[name] for p in parts]
        pad = padded - sum(len(a) for a in arrays)
        if pad:
            arrays.append(np.repeat(arrays[0][:1], pad, axis=0))
        merged[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return merged


def split(outputs: dict[str, np.ndarray], sizes: list[int], padded: int) -> list[dict[str, np.ndarray]]:
    """Each request's rows of every output (the padding dropped)."""
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != padded:
            raise FailedPreconditionError(
                f"Batched output tensor {name}'s 0th dimension does not equal the sum of the"
                f" 0th dimension sizes of the input tensors ({padded})")
    bounds = np.cumsum([0, *sizes])
    return [{name: value[lo:hi] for name, value in outputs.items()} for lo, hi in zip(bounds, bounds[1:])]
