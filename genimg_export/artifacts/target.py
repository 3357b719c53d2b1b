"""Target: one runnable thing (artifact, server or the Keras model) for one signature."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """One runnable thing to compare with the reference.

    ``artifact`` is a path, a HOST:PORT for servers, or None for keras (the
    reference model itself); ``fixed_size`` is (H, W) for exports that only
    take that size.
    """

    backend: str
    variant: str | None
    signature: str
    artifact: Path | str | None
    fixed_size: tuple[int, int] | None = None
    source_sha256: str | None = None  # hash of the model it was exported from (manifest)

    @property
    def label(self) -> str:
        return self.backend if self.variant is None else f"{self.backend}/{self.variant}"
