"""Read TF Serving's models.config (a ModelServerConfig in text form); the names and paths
of an export's ``serving/`` folder.

The exporters write an export's ``serving/models.config``,
``batching_parameters.txt`` and ``monitoring.config``
(genimg_serving.config_files); the real tensorflow_model_server
reads all three (Dockerfile.serving), the local server reads models.config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # as in the export's monitoring.config
MOUNT = "/models"  # where Dockerfile.serving copies an export's serving/
MODELS_CONFIG = "models.config"  # the three files of an export's serving/ folder
BATCHING_FILE = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"

EXAMPLE = (
    'model_config_list { config { name: "srgan" base_path: "/models/srgan"'
    ' model_platform: "tensorflow" } }'
)


class ConfigError(ValueError):
    """A config file or flag combination that cannot be served; one clear line."""


@dataclass(frozen=True)
class ModelConfig:
    """What the server needs to know about one model.

    ``policy`` is "latest" (the ``num_versions`` highest), "all" or
    "specific" (``versions``); ``labels`` maps version labels to numbers.
    """

    name: str
    base_path: Path
    policy: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)


def parse_model_config(text: str, source: str = "model config", base_dir: Path | None = None):
    """Parse ModelServerConfig text into ModelConfigs.

    Relative base paths are taken relative to ``base_dir`` (the config file's
    folder). The export's models.config names container paths
    (``/models/srgan``); where ``/models`` does not exist here, those are
    mapped to ``base_dir`` (``out/serving/srgan``), so the same file serves
    in Docker and locally.
    """
    from genimg_serving.protos import model_server_config_pb2

    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise ConfigError(
            f"{source} is not a ModelServerConfig in text form ({e}); expected e.g. {EXAMPLE}"
        ) from e
    if proto.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{source} has no model_config_list; expected e.g. {EXAMPLE}")
    configs = [_model_config(c, source, base_dir) for c in proto.model_config_list.config]
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source} lists model {dupes[0]!r} more than once")
    return configs


def _model_config(c, source: str, base_dir: Path | None) -> ModelConfig:
    if not c.name:
        raise ConfigError(f"{source}: a config entry has no name; expected e.g. {EXAMPLE}")
    if not c.base_path:
        raise ConfigError(f"{source}: model {c.name!r} has no base_path")
    if c.model_platform not in ("", "tensorflow"):
        raise ConfigError(
            f"{source}: model {c.name!r} has model_platform {c.model_platform!r};"
            " only 'tensorflow' SavedModels can be served"
        )
    policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
    num = c.model_version_policy.latest.num_versions or 1
    versions = tuple(c.model_version_policy.specific.versions)
    if policy == "specific" and not versions:
        raise ConfigError(f"{source}: model {c.name!r} has a specific policy with no versions")
    return ModelConfig(
        c.name, _base_path(c.base_path, base_dir), policy, num, versions, dict(c.version_labels)
    )


def _base_path(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    if base_dir is None:
        return p.absolute()
    if not p.is_absolute():
        return (base_dir / p).absolute()
    if not p.exists() and (path == MOUNT or path.startswith(MOUNT + "/")):
        return (base_dir / path[len(MOUNT):].lstrip("/")).absolute()
    return p


def read_model_config(path) -> list[ModelConfig]:
    """Read and parse a models.config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read model config file {path}: {e.strerror}") from e
    return parse_model_config(text, str(path), path.parent)


def single_model(name: str, base_path) -> list[ModelConfig]:
    """The config for ``--model-name NAME --model-base-path DIR``."""
    if not name:
        raise ConfigError("--model-name must not be empty (e.g. --model-name srgan)")
    return [ModelConfig(name, Path(base_path).absolute())]
