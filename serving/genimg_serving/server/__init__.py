"""A local server implementing TF Serving's gRPC and REST APIs (development and CI).

Not the production server: deploy the real tensorflow/serving image
(Dockerfile.serving). This one exists because TF Serving's binary cannot be
installed everywhere, and tests need a server that speaks the same API.
"""

from genimg_serving.server.app import ModelServer
from genimg_serving.server.batching import BatchingOptions, read_batching_parameters

__all__ = ["BatchingOptions", "ModelServer", "read_batching_parameters"]
