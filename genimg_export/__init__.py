"""genimg-export: train, export and verify image-generation models."""

__version__ = "0.1.0"
