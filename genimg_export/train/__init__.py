"""Training: the loop shared by every zoo model (``loop``), on shipped data or a
user's folder, from scratch or fine-tuned, on one device or many; and the
checkpointed state that lets an interrupted run resume exactly (``state``)."""

from genimg_export.train.loop import RunOptions, default_steps, save_model_and_card, seed_everything, train
from genimg_export.train.state import TrainingInterrupted

__all__ = ["RunOptions", "TrainingInterrupted", "default_steps", "save_model_and_card", "seed_everything", "train"]
