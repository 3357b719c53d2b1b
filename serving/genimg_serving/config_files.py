"""Write and parse the three TF Serving config files of an export's ``serving/`` folder.

- ``models.config``: a ``ModelServerConfig`` listing every model exported into
  this folder (latest-version policy), for ``--model_config_file``.
- ``batching_parameters.txt``: ``BatchingParameters`` for ``--enable_batching``.
- ``monitoring.config``: ``MonitoringConfig`` with the Prometheus path.

All three are protobuf text written from the protos and parsed back before
being renamed into place. ``models.config`` is read, updated and rewritten, so
exporting a second model into the same folder adds it instead of clobbering
the first. Base paths are where the tensorflow/serving image sees this folder
(``/models/<name>``, as ``Dockerfile.serving`` copies ``serving/`` to ``/models``);
``configs.parse_model_config`` maps them back when serving locally.

The toolchain (genimg_export) writes these at export time; this module sits here
so that the names, paths and defaults the server reads are defined once, beside
the reader. Its temporaries and lock file are named as genimg_export.fs names
them (``.NAME.tmp-PID``, ``.genimg-export.lock``), so an export's stale-temporary
sweep and locks cover them too; genimg_serving cannot import the toolchain.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from genimg_serving.config_protos import batching_parameters_class, monitoring_config_class
from genimg_serving.configs import BATCHING_FILE, MODELS_CONFIG, MONITORING_CONFIG, MOUNT, PROMETHEUS_PATH, ConfigError

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
    from genimg_serving.protos import model_server_config_pb2

    return model_server_config_pb2.ModelServerConfig


def parse(path: Path):
    """Parse one of the three files with its proto; ConfigError says what is wrong."""
    cls = {
        MODELS_CONFIG: model_server_config_class,
        BATCHING_FILE: batching_parameters_class,
        MONITORING_CONFIG: monitoring_config_class,
    }[Path(path).name]()
    try:
        return _text_format().Parse(Path(path).read_text(), cls())
    except _text_format().ParseError as e:
        raise ConfigError(f"{path} does not parse as TF Serving's {cls.DESCRIPTOR.name}: {e}") from e


def update(serving_dir: Path, model_name: str) -> None:
    """Add ``model_name`` to models.config (keeping the others); write the other two if absent."""
    serving_dir = Path(serving_dir)
    with _locked(serving_dir):
        models = serving_dir / MODELS_CONFIG
        config = parse(models) if models.exists() else model_server_config_class()()
        _write(models, _with_model(config, model_name), "model list, latest version of each")
        if not (serving_dir / BATCHING_FILE).exists():
            _write(serving_dir / BATCHING_FILE, _batching(), "server-side batching", _BATCHING_NOTE)
        if not (serving_dir / MONITORING_CONFIG).exists():
            _write(serving_dir / MONITORING_CONFIG, monitoring(), "Prometheus metrics")


def _with_model(config, model_name: str):
    """``config`` with ``model_name``'s entry added or replaced, entries sorted by name."""
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
    return config


def _batching():
    params = batching_parameters_class()()
    for name, value in BATCHING_DEFAULTS.items():
        getattr(params, name).value = value
    return params


def monitoring():
    """The MonitoringConfig an export ships: Prometheus on, at the path the server serves."""
    config = monitoring_config_class()()
    config.prometheus_config.enable = True
    config.prometheus_config.path = PROMETHEUS_PATH
    return config


def _write(path: Path, message, what: str, note: str = "") -> None:
    """Write ``message`` as text under a hidden name, parse it back, rename it into place."""
    text = _HEADER.format(what=what, proto=message.DESCRIPTOR.name) + note
    text += _text_format().MessageToString(message)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        _text_format().Parse(tmp.read_text(), type(message)())  # never install a file TF Serving rejects
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of models.config between exporting processes, with a
    lock on the folder itself: no lock file in what TF Serving and the Docker image see."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
