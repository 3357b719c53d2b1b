"""The training loop shared by every zoo model: seeded, checkpointed, logged to
TensorBoard, writing ``NAME.keras`` and ``NAME.card.json`` atomically.

A zoo spec supplies ``make_trainer(model, seed, batch=, lr=, ...) -> trainer``
with ``sample()`` (a batch of the shipped data, drawn from ``trainer.rng``),
``fit(batch) -> dict[str, loss]``, ``nets`` and ``optimizers`` (what a
checkpoint holds). A user's folder (``RunOptions.data``) replaces ``sample()``
by a ``tf.data`` stream (``zoo.data_stream``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genimg_export.artifacts.manifest import tool_versions
from genimg_export.errors import InvalidInputError
from genimg_export.fs import check_out_dir
from genimg_export.train.state import TrainingInterrupted, TrainState
from genimg_export.zoo.spec import ModelSpec

FINETUNE_STEPS = 300  # default --steps with --init-from
FINETUNE_LR_FACTOR = 0.1  # default fine-tuning learning rate: a tenth of the model's own


@dataclass
class RunOptions:
    """What a run trains on and how, beyond model, steps and seed.

    Args:
        data: a folder of the user's images (or TFRecord shards); None: the shipped data.
        val: a folder of validation images; None: every 10th file of ``data``
            when it has 10 or more, else the model's own held-out set.
        init_from: the zoo model's name (its shipped weights) or a ``.keras`` file.
        lr: learning rate; None: the model's own, a tenth of it when fine-tuning.
        batch: global batch (split across replicas); None: the model's own.
        checkpoint_every / eval_every: in steps (eval_every None: at the end only).
        resume: continue from the last checkpoint in ``OUT/checkpoints``.
        strategy: auto, one, mirrored, multiworker or tpu (``zoo.distribute``).
        mixed_precision: bfloat16 compute, float32 variables and saved model.
    """

    data: Path | None = None
    val: Path | None = None
    init_from: str | None = None
    lr: float | None = None
    batch: int | None = None
    checkpoint_every: int = 100
    eval_every: int | None = None
    resume: bool = False
    strategy: str = "one"
    mixed_precision: bool = False


def default_steps(spec: ModelSpec, run: RunOptions) -> int:
    return FINETUNE_STEPS if run.init_from else spec.default_steps


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seeds Python, numpy and TF, and makes TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(
    spec: ModelSpec, steps: int, out: Path, seed: int = 0, progress=None, run: RunOptions | None = None, **options
) -> dict:
    """Train ``spec`` for ``steps`` (from scratch or ``run.init_from``) and save model + card into ``out``.

    Returns the card (a dict). ``progress`` is a callable(step, losses) or None;
    ``options`` go to the model's trainer and evaluation (style: ``style=``).
    Raises TrainingInterrupted (after saving a checkpoint) on Ctrl-C or SIGTERM.
    """
    from genimg_export.zoo import distribute, user_data

    run = run or RunOptions()
    _check(spec, steps, run)
    out = check_out_dir(out)
    data = user_data.scan(spec.name, run.data) if run.data else None
    val = _validation(spec, data, run.val)
    if data is not None and run.val is None and val is not None:
        data = data.subset(lambda i: i % 10 != 9)
    seed_everything(seed)
    strategy = distribute.make_strategy(run.strategy)
    distribute.set_mixed_precision(run.mixed_precision)
    try:
        with strategy.scope():
            model = _initial_model(spec, run, options)
            trainer = spec.make_trainer(
                model, seed, **_trainer_args(spec, run, data, strategy), **_accepted(spec.make_trainer, options)
            )
            for optimizer, variables in trainer.optimizers:
                optimizer.build(variables)
        config = _run_config(spec, seed, trainer, run, data, options)
        state = TrainState(trainer, out / "checkpoints", config)
        card = _loop(spec, trainer, model, state, steps, seed, run, data, val, progress, options)
        replicas = strategy.num_replicas_in_sync
        card["strategy"] = {"name": run.strategy, "replicas": replicas, "mixed_precision": run.mixed_precision}
        save_model_and_card(_float32(spec, model, run, options), card, out / f"{spec.name}.keras")
    finally:
        distribute.set_mixed_precision(False)
    return card


def _check(spec: ModelSpec, steps: int, run: RunOptions) -> None:
    if steps <= 0:
        raise InvalidInputError(f"--steps must be a positive number of steps, got {steps}")
    if spec.make_trainer is None:
        raise InvalidInputError(f"model '{spec.name}' cannot be trained by this tool")
    for name in ("checkpoint_every", "eval_every", "batch"):
        value = getattr(run, name)
        if value is not None and value <= 0:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if run.lr is not None and run.lr <= 0:
        raise InvalidInputError(f"--lr must be positive, got {run.lr}")
    if run.val is not None and run.data is None:
        raise InvalidInputError("--val needs --data (without it the model's own held-out set is used)")


def _validation(spec: ModelSpec, data, val_dir):
    """The validation UserData: ``--val``, else every 10th file of ``data`` (10 or more files)."""
    from genimg_export.zoo import user_data

    if val_dir is not None:
        if "images" not in inspect.signature(spec.evaluate).parameters:
            raise InvalidInputError(
                f"{spec.name}'s quality metric does not run on your images (it scores generated digits); drop --val"
            )
        return user_data.scan(spec.name, val_dir)
    if (
        data is None
        or data.records
        or len(data.files) < 10
        or "images" not in inspect.signature(spec.evaluate).parameters
    ):
        return None
    return data.subset(lambda i: i % 10 == 9)


def _accepted(fn, options: dict) -> dict:
    """The ``options`` that ``fn`` takes by name: a model option goes to the build, trainer or metric that uses it."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in params}


def _initial_model(spec: ModelSpec, run: RunOptions, options: dict):
    """A fresh model (built with the ``options`` its build takes), with ``run.init_from``'s weights when given."""
    from genimg_export.zoo import distribute, loading
    from genimg_export.zoo.keras_file import load_keras

    model = spec.build(**_accepted(spec.build, options))
    if run.mixed_precision:
        distribute.outputs_float32(model)
    if run.init_from is None:
        return model
    if run.init_from != spec.name and not loading.looks_like_path(run.init_from):
        raise InvalidInputError(
            f"--init-from takes '{spec.name}' (its shipped weights) or a .keras file; got '{run.init_from}'"
        )
    source = load_keras(spec.weights_path if run.init_from == spec.name else Path(run.init_from))
    ours, theirs = [tuple(w.shape) for w in model.weights], [tuple(w.shape) for w in source.weights]
    if ours != theirs:
        raise InvalidInputError(
            f"--init-from {run.init_from} is not a {spec.name} model ({len(theirs)} weights, expected"
            f" {len(ours)} of {spec.name}'s shapes)"
        )
    model.set_weights(source.get_weights())
    return model


def _trainer_args(spec: ModelSpec, run: RunOptions, data, strategy) -> dict:
    params = inspect.signature(spec.make_trainer).parameters
    args = {}
    batch = run.batch or params["batch"].default
    if batch % strategy.num_replicas_in_sync:
        raise InvalidInputError(f"--batch {batch} does not split evenly over {strategy.num_replicas_in_sync} replicas")
    args["batch"] = batch
    if run.lr is not None or run.init_from:
        args["lr"] = run.lr or params["lr"].default * FINETUNE_LR_FACTOR
    if data is not None and data.classes and "classes" in params:
        args["classes"] = len(data.classes)
    return args


def _run_config(spec, seed, trainer, run, data, options) -> dict:
    """What must not change between a run and its --resume."""
    return {
        "model": spec.name,
        "seed": seed,
        "batch": trainer.config.get("batch"),
        "config": trainer.config,
        "data_sha256": data.digest if data else None,
        "init_from": run.init_from,
        "options": options,
    }


def _loop(spec, trainer, model, state, steps, seed, run, data, val, progress, options) -> dict:
    import tensorflow as tf

    from genimg_export.train import tensorboard
    from genimg_export.zoo import data_stream, user_data

    start, seconds_before = state.begin(run.resume)
    if start >= steps:
        raise InvalidInputError(f"--resume: the checkpoint is at step {start}; ask for more --steps than that")
    stream = None
    if data is not None:
        stream = iter(
            data_stream.batches(data, user_data.layout(spec.name), trainer.config["batch"], seed, start, steps)
        )
    val_images = data_stream.val_images(val, user_data.layout(spec.name)) if val else None
    writer = tf.summary.create_file_writer(str(state.folder.parent / "logs"))
    history: list[dict[str, float]] = []
    began = time.perf_counter()
    elapsed = lambda: seconds_before + time.perf_counter() - began  # noqa: E731
    with _stop_signals() as stopped, writer.as_default(), contextlib.closing(writer):
        for step in range(start + 1, steps + 1):
            losses = {k: float(v) for k, v in trainer.fit(next(stream) if stream else trainer.sample()).items()}
            history.append(losses)
            for k, v in losses.items():
                tensorboard.scalar(f"loss/{k}", v, step)
            if progress is not None:
                progress(step, losses)
            if run.eval_every and step % run.eval_every == 0 and step < steps:
                _log_metrics(spec, model, val_images, options, step)
            if stopped():
                state.save(step, elapsed())
                raise TrainingInterrupted(
                    f"interrupted at step {step}/{steps}; checkpoint saved in {state.folder};"
                    f" run the same command with --resume to continue"
                )
            if step % run.checkpoint_every == 0 or step == steps:
                state.save(step, elapsed())
        metrics = _log_metrics(spec, model, val_images, options, steps)
    return _card(spec, trainer, steps, seed, run, data, val, start, elapsed(), history, metrics, options)


@contextlib.contextmanager
def _stop_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (main thread only)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {
        s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield lambda: bool(caught)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _evaluate(spec: ModelSpec, model, val_images, options) -> dict:
    if spec.evaluate is None:
        return {}
    if val_images is not None:
        return spec.evaluate(model, images=val_images, **_accepted(spec.evaluate, options))
    return spec.evaluate(model, **_accepted(spec.evaluate, options))


def _log_metrics(spec, model, val_images, options, step) -> dict:
    """Evaluate, and log the numbers and a few outputs to TensorBoard."""
    from genimg_export.train import tensorboard

    metrics = _evaluate(spec, model, val_images, options)
    for k, v in metrics.items():
        if isinstance(v, (int, float)):
            tensorboard.scalar(f"val/{k}", v, step)
    sig = spec.default_signature
    outputs = sig.call(model, spec.sample_inputs(4, seed=0))
    image = np.clip((np.asarray(outputs[sig.outputs[0].name], np.float32) + 1.0) / 2.0, 0.0, 1.0)
    tensorboard.images("samples", image, step)
    return metrics


def _float32(spec: ModelSpec, model, run: RunOptions, options: dict):
    """The model to save: a float32 rebuild holding the weights if trained in mixed precision."""
    if not run.mixed_precision:
        return model
    from genimg_export.zoo import distribute

    distribute.set_mixed_precision(False)
    clean = spec.build(**_accepted(spec.build, options))
    clean.set_weights(model.get_weights())
    return clean


def _card(spec, trainer, steps, seed, run, data, val, start, seconds, history, metrics, options) -> dict:
    flags = "".join(f" --{k} {v}" for k, v in options.items())
    if data is not None:
        flags += f" --data {run.data}" + (f" --val {run.val}" if run.val else "")
    if run.init_from:
        flags += f" --init-from {run.init_from}"
    if run.lr is not None:
        flags += f" --lr {run.lr:g}"
    if run.batch is not None:
        flags += f" --batch {run.batch}"
    return {
        "model": spec.name,
        "task": spec.task,
        "description": spec.description,
        "steps": steps,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "losses": {"first_100": _mean(history[:100]), "last_100": _mean(history[-100:])},
        "evaluation": metrics,
        "config": getattr(trainer, "config", {}),
        "data": data.describe() if data else getattr(trainer, "data_description", ""),
        "data_sha256": data.digest if data else None,
        "data_skipped": list(data.skipped) if data else [],
        "validation": val.describe() if val else "the model's own held-out set",
        "init_from": run.init_from,
        "resumed_from_step": start or None,
        "versions": tool_versions(),
        "command": f"genimg-export train --model {spec.name} --steps {steps} --seed {seed}{flags} --out DIR",
        "argv": " ".join(["genimg-export", *sys.argv[1:]]) if sys.argv else "",
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {k: round(float(np.mean([r[k] for r in rows])), 5) for k in rows[0]}


def save_model_and_card(model, card: dict, path: Path) -> None:
    """Write ``path`` and its ``.card.json`` through temporary files, then rename."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    card_path = path.with_suffix(".card.json")
    card_tmp = card_path.with_name(f".{card_path.name}.tmp")
    try:
        model.save(tmp)
        card_tmp.write_text(json.dumps(card, indent=2) + "\n")
        tmp.replace(path)
        card_tmp.replace(card_path)
    finally:
        tmp.unlink(missing_ok=True)
        card_tmp.unlink(missing_ok=True)
