"""A TF1-style SavedModel run in a Session, as TF Serving runs every model.

TF1 exports (TF Serving's half_plus_two and half_plus_three) have no object
graph, so ``tf.saved_model.load`` rebuilds their signatures by pruning the
graph and forcing each TensorInfo's shape onto the tensor: an old export whose
TensorInfos carry no shape at all then fails with "Shapes must be equal rank,
but are 2 and 0". TF Serving never does that: it loads the MetaGraph into a
Session and feeds and fetches tensors by name, leaving shapes to the kernels
(an input of shape [3] for x:0 of shape [-1, 1] is fine when the graph can
compute it). This does the same.
"""

from __future__ import annotations

import threading

import numpy as np


class SessionModel:
    """One SavedModel's graph in its own Session; ``run`` is thread-safe."""

    def __init__(self, path, tags, signature_defs):
        import tensorflow as tf

        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            tf.compat.v1.saved_model.loader.load(self._session, tags, str(path))
        self._signature_defs = signature_defs
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feed inputs by alias, fetch every output of ``signature``; TF's errors propagate."""
        sig = self._signature_defs[signature]
        feeds = sorted(inputs)
        outputs = sorted(sig.outputs)
        fn = self._callable(signature, tuple(feeds), tuple(outputs))
        values = fn(*(inputs[a] for a in feeds))  # string tensors: object arrays of bytes
        return dict(zip(outputs, values))

    def _callable(self, signature: str, feeds: tuple, outputs: tuple):
        key = (signature, feeds, outputs)
        fn = self._callables.get(key)
        if fn is None:
            from tensorflow.core.protobuf import config_pb2

            sig = self._signature_defs[signature]
            options = config_pb2.CallableOptions(
                feed=[sig.inputs[a].name for a in feeds], fetch=[sig.outputs[a].name for a in outputs])
            with self._lock:
                # The public Session.run checks fed shapes against the graph's static
                # shapes in Python; a callable, like TF Serving's C++ Session::Run, does not.
                fn = self._callables.setdefault(key, self._session._make_callable_from_options(options))
        return fn

    def close(self) -> None:
        self._session.close()

