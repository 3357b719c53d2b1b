"""``assets.extra/tf_serving_warmup_requests``: a TFRecord of PredictionLog.

TF Serving (``--enable_model_warmup``) replays these requests when it loads a
version and only then marks it AVAILABLE, so the first real request does not
pay for graph initialisation. One request per signature, from the spec's own
sample inputs (at the canonical size for dynamic-shape models).
"""

from __future__ import annotations

from pathlib import Path

from genimg_export.zoo.spec import ModelSpec

FILENAME = "tf_serving_warmup_requests"
DEFAULT_SIZE = (16, 16)


def requests(spec: ModelSpec, fixed_size=None) -> list:
    """One PredictionLog (with a PredictRequest) per signature of ``spec``."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    size = tuple(fixed_size or spec.canonical_size or DEFAULT_SIZE)
    logs = []
    for sig in spec.signatures:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = spec.name
        request.model_spec.signature_name = sig.name
        for name, value in spec.sample_inputs(1, seed=0, signature=sig.name, size=size).items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write(spec: ModelSpec, path: Path, fixed_size=None) -> None:
    """Write the warmup TFRecord to ``path`` (inside a version being built)."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in requests(spec, fixed_size):
            writer.write(log.SerializeToString())


def read(path: Path) -> list:
    """The PredictionLogs in a warmup file (for tests and ``info``)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
