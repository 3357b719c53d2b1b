"""TF Serving configuration next to the model base paths, in ``out/serving/``.

- ``models.config``: a ``ModelServerConfig`` listing every model exported into
  this ``out`` (latest-version policy), for ``--model_config_file``.
- ``batching_parameters.txt``: ``BatchingParameters`` for ``--enable_batching``.
- ``monitoring.config``: ``MonitoringConfig`` with the Prometheus path.

All three are protobuf text written from the protos and parsed back before
being renamed into place. ``models.config`` is read, updated and rewritten, so
exporting a second model into the same ``out`` adds it instead of clobbering
the first. Base paths are where the tensorflow/serving image sees this folder
(``/models/<name>``, as ``Dockerfile.serving`` copies ``serving/`` to
``/models``); ``resolve_base_path`` maps them back to this folder.
"""

from __future__ import annotations

from pathlib import Path

from genimg_export.errors import InvalidInputError
from genimg_export import fs
from genimg_serving.config_protos import batching_parameters_class, monitoring_config_class

MODELS_CONFIG = "models.config"
BATCHING = "batching_parameters.txt"
MONITORING = "monitoring.config"
MOUNT = "/models"  # where Dockerfile.serving puts this folder
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

# For a CPU pod of about 2 cores (TF Serving's batching guide: batch threads = cores);
# what the local server measured with these and other values: benchmarks/README.md, "Serving".
BATCHING_DEFAULTS = {
    "max_batch_size": 8,
    "batch_timeout_micros": 1000,
    "max_enqueued_batches": 100,
    "num_batch_threads": 2,
}

_HEADER = "# Written by genimg-export ({what}); parsed with TF Serving's {proto} before use.\n"
_BATCHING_NOTE = (
    "# TF Serving batches requests whose inputs have equal shapes; padding is left off\n"
    "# because it would change image-to-image outputs near the padded border, so clients\n"
    "# of dynamic-size models (srgan, style, pix2pix) should send equal-size tiles.\n"
)


def _text_format():
    from google.protobuf import text_format

    return text_format


def model_server_config_class():
    from tensorflow_serving.config import model_server_config_pb2

    return model_server_config_pb2.ModelServerConfig


def parse(path: Path):
    """Parse one of the three files with its proto; InvalidInputError says what is wrong."""
    cls = {
        MODELS_CONFIG: model_server_config_class,
        BATCHING: batching_parameters_class,
        MONITORING: monitoring_config_class,
    }[Path(path).name]()
    try:
        return _text_format().Parse(Path(path).read_text(), cls())
    except _text_format().ParseError as e:
        raise InvalidInputError(f"{path} does not parse as TF Serving's {cls.DESCRIPTOR.name}: {e}") from e


def update(serving_dir: Path, model_name: str) -> None:
    """Add ``model_name`` to models.config (keeping the others); write the other two if absent."""
    serving_dir = Path(serving_dir)
    with fs.locked(serving_dir):
        config = parse(serving_dir / MODELS_CONFIG) if (serving_dir / MODELS_CONFIG).exists() \
            else model_server_config_class()()
        entries = {c.name: c for c in config.model_config_list.config}
        entry = model_server_config_class()().model_config_list.config.add()
        entry.name = model_name
        entry.base_path = f"{MOUNT}/{model_name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.latest.num_versions = 1
        entries[model_name] = entry
        config.model_config_list.ClearField("config")
        for name in sorted(entries):
            config.model_config_list.config.add().CopyFrom(entries[name])
        _write(serving_dir / MODELS_CONFIG, config, "model list, latest version of each")
        if not (serving_dir / BATCHING).exists():
            _write(serving_dir / BATCHING, _batching(), "server-side batching", _BATCHING_NOTE)
        if not (serving_dir / MONITORING).exists():
            _write(serving_dir / MONITORING, _monitoring(), "Prometheus metrics")


def _batching():
    params = batching_parameters_class()()
    for name, value in BATCHING_DEFAULTS.items():
        getattr(params, name).value = value
    return params


def _monitoring():
    config = monitoring_config_class()()
    config.prometheus_config.enable = True
    config.prometheus_config.path = PROMETHEUS_PATH
    return config


def _write(path: Path, message, what: str, note: str = "") -> None:
    text = _HEADER.format(what=what, proto=message.DESCRIPTOR.name) + note
    text += _text_format().MessageToString(message)
    with fs.atomic_path(path) as tmp:
        tmp.write_text(text)
        _text_format().Parse(tmp.read_text(), type(message)())  # never install a file TF Serving rejects


def resolve_base_path(config_path: Path, base_path: str) -> Path:
    """Where a models.config base path lies on this machine: ``/models/x`` -> ``<config dir>/x``."""
    if base_path == MOUNT or base_path.startswith(MOUNT + "/"):
        return Path(config_path).parent / base_path[len(MOUNT):].lstrip("/")
    return Path(base_path)
