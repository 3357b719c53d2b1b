"""One loaded version of one model: a SavedModel and its signatures.

TF2 SavedModels load with ``tf.saved_model.load`` and run as concrete
functions; TF1-style ones (no object graph: TF Serving's half_plus_two and
half_plus_three) run in a Session, as TF Serving runs them (session_model.py).
The SignatureDefs come straight from ``saved_model.pb``, so metadata is what
TF Serving would report, field for field.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from genimg_serving.errors import (
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    ServingError,
    error_for,
)
from genimg_serving.server.session_model import SessionModel

log = logging.getLogger("genimg_serving")

SERVE_TAG = "serve"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's cap


class LoadError(RuntimeError):
    """A version directory that could not be loaded; the message says why."""


def read_meta_graph(path: Path):
    """The MetaGraphDef tagged 'serve' from ``saved_model.pb``."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(pb.read_bytes())
    except OSError as e:
        raise LoadError(f"cannot read {pb}: {e.strerror}") from e
    except Exception as e:  # protobuf DecodeError
        raise LoadError(f"{pb} is not a SavedModel ({e})") from e
    for meta in saved.meta_graphs:
        if SERVE_TAG in meta.meta_info_def.tags:
            return meta
    raise LoadError(f"{path} has no MetaGraph tagged '{SERVE_TAG}'")


class Servable:
    """A loaded model version. Thread-safe: requests call ``run`` concurrently."""

    def __init__(self, name: str, version: int, path: Path, meta_graph, loaded, batcher=None):
        self.name, self.version, self.path = name, version, path
        self.batcher = batcher  # a batching.Batcher, or None: each request runs on its own
        # A plain dict: indexing a protobuf map inserts missing keys.
        self.signature_defs = dict(meta_graph.signature_def)
        self._loaded = loaded  # keeps the functions' variables alive
        self._functions = None if isinstance(loaded, SessionModel) else dict(loaded.signatures)

    @classmethod
    def load(cls, name: str, version: int, path: Path, warmup: bool = True, batcher=None) -> Servable:
        import tensorflow as tf

        meta = read_meta_graph(path)
        try:
            if meta.object_graph_def.nodes:
                loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
            else:
                loaded = SessionModel(path, [SERVE_TAG], dict(meta.signature_def))
        except Exception as e:
            raise LoadError(f"cannot load SavedModel {path}: {_first_line(e)}") from e
        servable = cls(name, version, path, meta, loaded, batcher)
        if warmup:
            servable.warmup()
        return servable

    def signature_def(self, name: str):
        """The SignatureDef ``name``; FAILED_PRECONDITION as TF Serving says it."""
        try:
            return self.signature_defs[name]
        except KeyError:
            raise FailedPreconditionError(
                f'Serving signature key "{name}" not found.'
                f" Available: {', '.join(sorted(self.signature_defs))}"
            ) from None

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on already validated inputs (batched with others when
        batching is on); outputs by alias."""
        if self.batcher is None:
            return self.run_now(signature, inputs)
        return self.batcher.run((self, signature), inputs, lambda merged: self.run_now(signature, merged), self.name)

    def run_now(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call a signature on these inputs in this thread."""
        import tensorflow as tf

        if signature not in self.signature_defs:
            raise FailedPreconditionError(f'Serving signature key "{signature}" not found.')
        try:
            result = self._call(signature, inputs)
        except ServingError:
            raise
        except tf.errors.OpError as e:
            raise error_for(e.error_code, _first_paragraph(e.message)) from e
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(_first_paragraph(str(e))) from e
        except Exception as e:
            raise InternalError(f"{type(e).__name__}: {_first_paragraph(str(e))}") from e
        return result

    def _call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        if self._functions is None:
            return self._loaded.run(signature, inputs)
        fn = self._functions.get(signature)
        if fn is None:  # a SignatureDef TF could not turn into a function
            raise FailedPreconditionError(f'Serving signature key "{signature}" not found.')
        result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in result.items()}

    def warmup(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (Predict records).

        A broken warmup file fails the load, as in TF Serving.
        """
        path = self.path / WARMUP_FILE
        if not path.exists():
            return 0
        import tensorflow as tf

        from genimg_serving.protos import prediction_log_pb2
        from genimg_serving.server import handlers

        count = 0
        try:
            for raw in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
                record = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
                if record.WhichOneof("log_type") == "predict_log":
                    handlers.predict_on(self, record.predict_log.request)
                    count += 1
        except Exception as e:
            raise LoadError(f"warmup of {self.name} version {self.version} failed: {e}") from e
        log.info("warmed up %s version %d with %d requests", self.name, self.version, count)
        return count


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n")[0].strip()


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
