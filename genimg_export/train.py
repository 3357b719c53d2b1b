"""The training loop shared by every zoo model: seeded, with a progress bar,
writing ``NAME.keras`` and ``NAME.card.json`` atomically.

A zoo spec supplies ``make_trainer(model, seed) -> trainer`` where
``trainer.step() -> dict[str, float]`` runs one optimisation step on a batch
it draws itself from a seeded numpy Generator.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from genimg_export.artifacts.manifest import tool_versions
from genimg_export.errors import InvalidInputError
from genimg_export.fs import check_out_dir
from genimg_export.zoo.spec import ModelSpec


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seeds Python, numpy and TF, and makes TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(spec: ModelSpec, steps: int, out: Path, seed: int = 0, progress=None, **options) -> dict:
    """Train ``spec`` from scratch for ``steps`` and save model + card into ``out``.

    Returns the card (a dict). ``progress`` is a callable(step, losses) or None;
    ``options`` go to the model's trainer and evaluation (style: ``style=``).
    """
    if steps <= 0:
        raise InvalidInputError(f"--steps must be a positive number of steps, got {steps}")
    if spec.make_trainer is None:
        raise InvalidInputError(f"model '{spec.name}' cannot be trained by this tool")
    out = check_out_dir(out)
    seed_everything(seed)
    model = spec.build()
    trainer = spec.make_trainer(model, seed, **options)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        losses = {k: float(v) for k, v in trainer.step().items()}
        history.append(losses)
        if progress is not None:
            progress(step, losses)
    seconds = time.perf_counter() - start
    metrics = spec.evaluate(model, **options) if spec.evaluate else {}
    card = {
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
        "data": getattr(trainer, "data_description", ""),
        "versions": tool_versions(),
        "command": f"genimg-export train --model {spec.name} --steps {steps} --seed {seed}"
        + "".join(f" --{k} {v}" for k, v in options.items()) + " --out DIR",
        "argv": " ".join(["genimg-export", *sys.argv[1:]]) if sys.argv else "",
    }
    save_model_and_card(model, card, out / f"{spec.name}.keras")
    return card


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
