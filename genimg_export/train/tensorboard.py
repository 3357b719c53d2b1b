"""TensorBoard scalars and images through ``tf.summary.write``, which is core
TensorFlow: the ``tensorboard`` package (needed by ``tf.summary.scalar``) is not
a dependency, only a viewer (``pip install tensorboard; tensorboard --logdir OUT/logs``).
The records carry the same plugin metadata as TensorBoard's own writers."""

from __future__ import annotations

import numpy as np


def _metadata(plugin: str) -> bytes:
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin)
    ).SerializeToString()


def scalar(tag: str, value: float, step: int) -> None:
    import tensorflow as tf

    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=_metadata("scalars"))


def images(tag: str, batch: np.ndarray, step: int) -> None:
    """(N, H, W, C) in [0, 1] as PNGs, in the images plugin's layout [width, height, png...]."""
    import tensorflow as tf

    pixels = tf.image.convert_image_dtype(np.asarray(batch, np.float32), tf.uint8, saturate=True)
    pngs = [tf.io.encode_png(p) for p in pixels]
    h, w = pixels.shape[1:3]
    tensor = tf.stack([tf.constant(str(w)), tf.constant(str(h)), *pngs])
    tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))
