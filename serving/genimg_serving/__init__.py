"""genimg-serving: client for TensorFlow Serving and a local TF-Serving-compatible server."""
