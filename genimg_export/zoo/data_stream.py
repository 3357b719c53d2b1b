"""Stream a scanned ``UserData`` as training batches with ``tf.data``.

Every element is a pure function of (seed, its index in the run): a folder is
read in a stateless per-epoch permutation (``index_shuffle``), TFRecord shards
through a seeded shuffle buffer (replayed by ``skip`` on resume), and each
crop and flip uses a stateless seed (seed, index). So the batches of steps
k.. are the same whether the run started at 0 or was resumed at k.
"""

from __future__ import annotations

import numpy as np

from genimg_export.zoo.user_data import DIGIT_SIDE, SHUFFLE_RECORDS, Layout, UserData

VAL_SIDE = 512  # validation images are centre-cropped to at most this side (evaluation memory)


def batches(ud: UserData, lay: Layout, batch: int, seed: int, start_step: int, steps: int):
    """The batches of steps ``start_step`` .. ``steps - 1``: arrays, or tuples
    (degraded, clean) for pix2pix pairs and (images, labels) for cgan."""
    import tensorflow as tf

    first, last = start_step * batch, steps * batch
    index = tf.data.Dataset.range(first, last)
    if ud.records:
        stream = tf.data.TFRecordDataset(list(ud.files)).repeat().shuffle(SHUFFLE_RECORDS, seed=seed)
        ds = tf.data.Dataset.zip(index, stream.skip(first)).map(
            lambda i, rec: _from_record(rec, i, seed, lay), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    else:
        files = tf.constant(list(ud.files))
        targets = tf.constant(list(ud.targets)) if ud.targets else None
        labels = tf.constant(list(ud.labels), tf.int32) if ud.labels else None
        ds = index.map(
            lambda i: _from_files(i, seed, lay, files, targets, labels),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _from_files(i, seed: int, lay: Layout, files, targets, labels):
    import tensorflow as tf

    n = tf.size(files, out_type=tf.int64)
    key = tf.stack([tf.constant(seed, tf.int64), i // n])  # one permutation per epoch
    k = tf.random.experimental.index_shuffle(i % n, key, n - 1)
    image = _decode(tf.io.read_file(files[k]), lay)
    if targets is not None:
        return _augment([image, _decode(tf.io.read_file(targets[k]), lay)], i, seed, lay)
    out = _augment([image], i, seed, lay)[0]
    return (out, labels[k]) if labels is not None else out


def _from_record(record, i, seed: int, lay: Layout):
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    if lay.classes:
        spec["label"] = tf.io.FixedLenFeature([], tf.int64)
    ex = tf.io.parse_single_example(record, spec)
    out = _augment([_decode(ex["image"], lay)], i, seed, lay)[0]
    return (out, tf.cast(ex["label"], tf.int32)) if lay.classes else out


def _decode(raw, lay: Layout):
    import tensorflow as tf

    channels = 3 if lay.crop else 1
    img = tf.io.decode_image(raw, channels=channels, expand_animations=False, dtype=tf.uint8)
    return tf.cast(img, tf.float32) / 127.5 - 1.0


def _augment(images: list, i, seed: int, lay: Layout) -> list:
    """The same random crop (and flip) of each image, or each made a 32x32 digit."""
    import tensorflow as tf

    if lay.crop is None:
        return [_digit(x) for x in images]
    x = tf.concat(images, -1)  # pairs share one crop
    seed = tf.constant(seed, tf.int64)
    x = tf.image.stateless_random_crop(x, [lay.crop, lay.crop, 3 * len(images)], seed=tf.stack([seed, 2 * i]))
    if lay.flip:
        x = tf.image.stateless_random_flip_left_right(x, seed=tf.stack([seed, 2 * i + 1]))
    return tf.split(x, len(images), axis=-1)


def _digit(x):
    """Centre square, resized to 32x32 (bicubic, antialiased), in [-1, 1]."""
    import tensorflow as tf

    side = tf.minimum(tf.shape(x)[0], tf.shape(x)[1])
    x = tf.image.resize_with_crop_or_pad(x, side, side)
    x = tf.image.resize(x, (DIGIT_SIDE, DIGIT_SIDE), method="bicubic", antialias=True)
    return tf.clip_by_value(x, -1.0, 1.0)


def val_images(ud: UserData, lay: Layout, limit: int = 16) -> list[np.ndarray]:
    """Up to ``limit`` whole images (centre-cropped to 512) or 32x32 digits, decoded as in training."""
    import tensorflow as tf

    if ud.records:
        raws = [ex for ex in tf.data.TFRecordDataset(list(ud.files)).take(limit)]
        raws = [tf.io.parse_single_example(r, {"image": tf.io.FixedLenFeature([], tf.string)})["image"] for r in raws]
    else:
        raws = [tf.io.read_file(f) for f in (ud.targets or ud.files)[:limit]]
    out = []
    for raw in raws:
        x = _decode(raw, lay)
        if lay.crop is None:
            out.append(_digit(x).numpy())
            continue
        h, w = min(int(x.shape[0]), VAL_SIDE), min(int(x.shape[1]), VAL_SIDE)
        out.append(tf.image.resize_with_crop_or_pad(x, h, w).numpy())
    return out
