"""Everything a training run needs to continue exactly where it stopped.

A ``tf.train.Checkpoint`` of every variable of the trainer's networks (their
dropout seed generators included) and optimizers, the step, the seconds spent,
and the trainer's numpy Generator state (the degradations, latents and noise it
draws). The data stream is a function of (seed, step) (``zoo.data_stream``), so
it needs no state. ``run.json`` beside the checkpoints records what the run was
(model, seed, batch, data hash, ...) so that ``--resume`` refuses a different one.
"""

from __future__ import annotations

import json
from pathlib import Path

from genimg_export.errors import GenimgError, InvalidInputError
from genimg_export.fs import write_text_atomic


class TrainingInterrupted(GenimgError):
    """Ctrl-C or SIGTERM: a checkpoint was saved, ``--resume`` continues."""

    exit_code = 130


class TrainState:
    """The checkpointed state of a trainer (see the module docstring)."""

    def __init__(self, trainer, folder: Path, config: dict):
        import tensorflow as tf

        self.trainer, self.folder, self.config = trainer, Path(folder), config
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.rng = tf.Variable("", dtype=tf.string, trainable=False)
        tracked = {"step": self.step, "seconds": self.seconds, "rng": self.rng}
        for name, net in trainer.nets.items():
            tracked |= {f"{name}_{i}": v for i, v in enumerate(net.variables)}
        for j, (optimizer, _) in enumerate(trainer.optimizers):
            tracked |= {f"optimizer{j}_{i}": v for i, v in enumerate(optimizer.variables)}
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.folder), max_to_keep=2)

    @property
    def run_json(self) -> Path:
        return self.folder / "run.json"

    def begin(self, resume: bool) -> tuple[int, float]:
        """(first step to run, seconds already spent): 0 for a new run, else the restored step."""
        latest = self._latest()
        if not resume:
            if latest:
                raise InvalidInputError(
                    f"{self.folder} holds a checkpoint of an earlier run; add --resume to continue it,"
                    f" or train into another --out"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_json, json.dumps(self.config, indent=2) + "\n")
            return 0, 0.0
        if latest is None:
            raise InvalidInputError(
                f"--resume: no checkpoint in {self.folder} (a run saves one every --checkpoint-every steps)"
            )
        self._check_same_run()
        self.checkpoint.restore(latest).assert_consumed()
        self.trainer.rng.bit_generator.state = json.loads(self.rng.numpy().decode())
        return int(self.step.numpy()), float(self.seconds.numpy())

    def _latest(self) -> str | None:
        """The manager's newest checkpoint, else the newest complete one on disk: TF writes
        ``ckpt-N.index`` last, then the manager its ``checkpoint`` file, and a run killed
        between the two at its first save would otherwise look as if it had saved nothing."""
        if self.manager.latest_checkpoint:
            return self.manager.latest_checkpoint
        numbers = [p.stem.removeprefix("ckpt-") for p in self.folder.glob("ckpt-*.index")]
        steps = [int(n) for n in numbers if n.isdigit()]
        return str(self.folder / f"ckpt-{max(steps)}") if steps else None

    def _check_same_run(self) -> None:
        saved = json.loads(self.run_json.read_text()) if self.run_json.exists() else {}
        for key, value in self.config.items():
            if saved.get(key) != value:
                raise InvalidInputError(
                    f"--resume: the checkpoint in {self.folder} is of a run with {key}={saved.get(key)!r},"
                    f" not {value!r}; resume with the same options, or train into another --out"
                )

    def save(self, step: int, seconds: float) -> None:
        self.step.assign(step)
        self.seconds.assign(seconds)
        self.rng.assign(json.dumps(self.trainer.rng.bit_generator.state))
        self.manager.save(checkpoint_number=step)
