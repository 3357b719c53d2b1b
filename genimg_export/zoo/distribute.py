"""What the zoo's trainers need to run under a ``tf.distribute`` strategy.

A trainer's step is written for one device: it takes a global batch and
averages its loss over it. Under a strategy with N replicas each replica sees
1/N of the batch, and Keras' optimizer *sums* the replicas' gradients, so each
replica's gradients are divided by N (``per_replica``) and the step is run through
``strategy.run`` on its slice of the batch (``replicated``). With one replica
both are the identity, so single-device training is bit-for-bit unchanged.
"""

from __future__ import annotations


def per_replica(grads):
    """The gradients to apply: each divided by N under N replicas (Keras sums them
    over replicas), the list itself otherwise."""
    import tensorflow as tf

    n = tf.distribute.get_strategy().num_replicas_in_sync
    return grads if n == 1 else [None if g is None else g / n for g in grads]


def replicated(step):
    """``step(*args)`` over the current strategy's replicas, each on its slice of the
    batch (axis 0 of every array argument); the outputs are averaged over replicas.
    Call it where the trainer is built (inside ``strategy.scope()``)."""
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    n = strategy.num_replicas_in_sync
    if n == 1:
        return step

    def spread(a):  # one array -> its per-replica slices
        if a is None:
            return None
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: _slice(a, ctx.replica_id_in_sync_group, n)
        )

    @tf.function
    def run(*args):
        out = strategy.run(step, args=tf.nest.map_structure(spread, args))
        return tf.nest.map_structure(lambda t: strategy.reduce(tf.distribute.ReduceOp.MEAN, t, axis=None), out)

    return run


def _slice(a, i: int, n: int):
    import tensorflow as tf

    a = tf.convert_to_tensor(a)
    per = tf.shape(a)[0] // n
    return a[i * per : (i + 1) * per]


STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``--strategy NAME``.

    auto: TPU when ``TPU_NAME`` is set, multi-worker when ``TF_CONFIG`` is,
    mirrored over the GPUs when there are two or more, else one device.
    mirrored uses every GPU, or every logical CPU device when there is no GPU.
    """
    import os

    import tensorflow as tf

    from genimg_export.errors import InvalidInputError

    if name == "auto":
        name = _auto()
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise InvalidInputError(
                "--strategy multiworker needs TF_CONFIG (cluster and this worker's task); see docs/training.md"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(os.environ.get("TPU_NAME", "local"))
    raise InvalidInputError(f"unknown strategy '{name}'; choose one of {', '.join(STRATEGIES)}")


def _auto() -> str:
    import os

    import tensorflow as tf

    if os.environ.get("TPU_NAME"):
        return "tpu"
    if os.environ.get("TF_CONFIG"):
        return "multiworker"
    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "one"


def _tpu_strategy(tpu: str):
    import tensorflow as tf

    from genimg_export.errors import InvalidInputError, first_line

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as e:  # no TPU shows up as ValueError, NotFoundError or a gRPC error
        raise InvalidInputError(
            f"--strategy tpu: no TPU '{tpu}' reachable ({first_line(e)}); set TPU_NAME or run on a TPU VM"
        ) from e
    return tf.distribute.TPUStrategy(resolver)


def set_mixed_precision(on: bool) -> None:
    """bfloat16 compute for layers built from now on, float32 variables (or back to float32).

    bfloat16 (not float16) because it needs no loss scaling, which the zoo's
    custom training steps do not do; Ampere+ GPUs and TPUs run it natively.
    """
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if on else "float32")


def outputs_float32(model) -> None:
    """Layers that produce a (nested) model's outputs compute in float32, so losses
    against float32 targets and the exported signature stay float32."""
    for m in [model, *(layer for layer in model.layers if hasattr(layer, "outputs"))]:
        for t in m.outputs:
            t._keras_history.operation.dtype_policy = "float32"
