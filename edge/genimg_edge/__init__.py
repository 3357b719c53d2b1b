"""genimg-edge: run genimg-export TFLite files with only ai-edge-litert, numpy, Pillow."""

__version__ = "0.1.0"
