"""Which versions of which models are served, kept in step with the disk.

TF Serving semantics: numeric version directories under each base path, a
version policy (latest N / all / specific), version labels, polling. Loading
happens off to the side; the served map is then swapped in one assignment,
so a request that already holds a Servable finishes on it while new requests
see the new version. A version is unloaded only once a replacement is
available (availability-preserving).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from genimg_serving.configs import ConfigError, ModelConfig
from genimg_serving.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from genimg_serving.server.servable import LoadError, Servable

log = logging.getLogger("genimg_serving")

INT64_MAX = 2**63 - 1
_VERSION_NAME = re.compile(r"[0-9]+")  # ASCII digits only: "²".isdigit() is True, int("²") raises


@dataclass(frozen=True)
class VersionState:
    """ModelVersionStatus: state name and the load error (code 0 = OK)."""

    state: str  # LOADING, AVAILABLE, UNLOADING, END
    error_code: int = 0
    error_message: str = ""


def list_versions(base_path: Path) -> dict[int, Path]:
    """Numeric version directories that hold a SavedModel.

    As TF Serving's file-system source (SimpleAtoi to int64), a name that is
    not a number or does not fit an int64 is not a version: it is ignored.
    """
    versions = {}
    for entry in sorted(base_path.iterdir()):
        if not _VERSION_NAME.fullmatch(entry.name) or int(entry.name) > INT64_MAX:
            continue
        if entry.is_dir() and (entry / "saved_model.pb").is_file():
            versions.setdefault(int(entry.name), entry)
    return versions


def fingerprint(path: Path) -> tuple:
    """Names, sizes and mtimes of every file under a version directory: it changes
    while a version is still being copied in, and stays put once it is complete."""
    seen = []
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:  # removed while we looked: the next poll sees the change
                continue
            seen.append((os.path.relpath(os.path.join(root, name), path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(seen))


def aspired(config: ModelConfig, on_disk: dict[int, Path]) -> dict[int, Path]:
    """The versions the policy wants served."""
    if config.policy == "all":
        keep = set(on_disk)
    elif config.policy == "specific":
        keep = set(config.versions) & set(on_disk)
    else:
        keep = set(sorted(on_disk)[-config.num_versions:])
    return {v: on_disk[v] for v in keep}


class ModelManager:
    """Loads, serves and unloads versions; resolves requests to a Servable."""

    def __init__(self, configs: list[ModelConfig], warmup: bool = True, max_pixels: int | None = None,
                 batcher=None, tensor_content: bool = False):
        self.warmup, self.max_pixels, self.batcher = warmup, max_pixels, batcher
        self.tensor_content = tensor_content  # replies in tensor_content, not float_val ...
        self._configs = {c.name: c for c in configs}
        self._served: dict[str, dict[int, Servable]] = {}  # replaced, never mutated
        self._states: dict[str, dict[int, VersionState]] = {}
        self._failed: dict[Path, tuple] = {}  # path -> fingerprint of the files that failed
        self._lock = threading.Lock()  # one reconciliation at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for c in configs:
            if not c.base_path.is_dir():
                raise ConfigError(f"could not find base path {c.base_path} for model {c.name!r}")

    # ---- requests ------------------------------------------------------------

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The Servable a request names; TF Serving's errors otherwise."""
        versions = self._served.get(name, {})
        if label:
            version = self.label_version(name, label)
        if version is not None:
            if version not in versions:
                raise NotFoundError(f"Servable not found for request: Specific({name}, {version})")
            return versions[version]
        if not versions:
            raise NotFoundError(f"Servable not found for request: Latest({name})")
        return versions[max(versions)]

    def label_version(self, name: str, label: str) -> int:
        config = self._configs.get(name)
        if config is None or label not in config.labels:
            raise InvalidArgumentError(f"Unrecognized servable version label: {label}")
        return config.labels[label]

    def states(self, name: str) -> dict[int, VersionState]:
        return dict(self._states.get(name, {}))

    def served(self) -> dict[str, list[int]]:
        return {n: sorted(v) for n, v in self._served.items()}

    @property
    def configs(self) -> list[ModelConfig]:
        return list(self._configs.values())

    # ---- reconciliation ------------------------------------------------------

    def set_configs(self, configs: list[ModelConfig]) -> None:
        """Serve exactly these models from now on (models.config reload)."""
        for c in configs:
            if not c.base_path.is_dir():
                raise ConfigError(f"could not find base path {c.base_path} for model {c.name!r}")
        with self._lock:
            self._configs = {c.name: c for c in configs}
        self.poll()

    def check_labels(self, configs: list[ModelConfig]) -> None:
        """FAILED_PRECONDITION, before anything changes, when a label names a version the
        policy will not serve (TF Serving's ServerCore refuses such a label map)."""
        for c in configs:
            try:
                servable = aspired(c, list_versions(c.base_path)) if c.base_path.is_dir() else {}
            except OSError:
                servable = {}
            for version in sorted(c.labels.values()):
                if version not in servable:
                    raise FailedPreconditionError(
                        f"Request to assign label to version {version} of model {c.name},"
                        " which is not currently available for inference")

    def poll(self) -> None:
        """One pass: load what the policies want, swap, unload the rest."""
        with self._lock:
            served = dict(self._served)
            for name in [n for n in served if n not in self._configs]:
                self._unload(name, served.pop(name))
            for config in self._configs.values():
                served[config.name] = self._reconcile(config, served.get(config.name, {}))
            self._served = served

    def _reconcile(self, config: ModelConfig, current: dict[int, Servable]) -> dict[int, Servable]:
        try:
            wanted = aspired(config, list_versions(config.base_path))
        except OSError as e:
            log.warning("cannot list %s: %s", config.base_path, e)
            return current
        new = {v: current[v] for v in wanted if v in current}
        for version, path in sorted(wanted.items()):
            if version not in new:
                servable = self._load(config.name, version, path)
                if servable is not None:
                    new[version] = servable
        if not new and current:
            return current  # keep serving until a replacement is available
        self._unload(config.name, {v: s for v, s in current.items() if v not in new})
        return new

    def _load(self, name: str, version: int, path: Path) -> Servable | None:
        # A failed version is retried once its files change (a copy still in
        # progress completes), not on a timer: the same broken files fail the same way.
        files = fingerprint(path)
        if self._failed.get(path) == files:
            return None
        self._set_state(name, version, VersionState("LOADING"))
        started = time.perf_counter()
        try:
            servable = Servable.load(name, version, path, warmup=self.warmup, batcher=self.batcher)
        except LoadError as e:
            log.error("loading %s version %d failed: %s", name, version, e)
            self._failed[path] = files
            self._set_state(name, version, VersionState("END", 2, str(e)))  # 2 = UNKNOWN
            return None
        self._failed.pop(path, None)
        self._set_state(name, version, VersionState("AVAILABLE"))
        log.info("serving %s version %d from %s (loaded in %.1f s)",
                 name, version, path, time.perf_counter() - started)
        return servable

    def _unload(self, name: str, versions: dict[int, Servable]) -> None:
        # Requests holding one of these Servables keep it alive until they finish.
        for version in versions:
            self._set_state(name, version, VersionState("END"))
            log.info("unloaded %s version %d", name, version)

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        states = dict(self._states.get(name, {}))
        states[version] = state
        self._states = {**self._states, name: states}

    # ---- polling -------------------------------------------------------------

    def start_polling(self, seconds: float, config_file: Path | None = None) -> None:
        """Poll the base paths (and models.config, if given) every ``seconds``."""
        if seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll_loop, args=(seconds, config_file), name="genimg-poll", daemon=True
        )
        self._thread.start()

    def _poll_loop(self, seconds: float, config_file: Path | None) -> None:
        from genimg_serving.configs import read_model_config

        config_mtime = config_file.stat().st_mtime if config_file else None
        while not self._stop.wait(seconds):
            try:
                if config_file and config_file.stat().st_mtime != config_mtime:
                    config_mtime = config_file.stat().st_mtime
                    self.set_configs(read_model_config(config_file))
                    log.info("reloaded %s", config_file)
                else:
                    self.poll()
            except (OSError, ConfigError) as e:
                log.error("poll failed, still serving the previous versions: %s", e)
            except Exception:  # a bug must not end polling: new versions would never load
                log.exception("poll failed, still serving the previous versions")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
