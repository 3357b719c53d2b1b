"""The Runner base class: input checking and output naming shared by all backends."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from genimg_export.errors import InvalidInputError


class Runner:
    """Base of every backend runner. Subclasses set ``backend`` and implement
    ``_run(inputs) -> outputs`` (and ``close`` when they hold resources).

    ``run`` checks the inputs against the signature (names, rank, fixed dims),
    casts them to the declared dtypes, and returns float/int numpy arrays keyed
    by the signature's output names.
    """

    backend = "base"

    def __init__(self, artifact, spec, signature: str = "serving_default"):
        self.artifact = artifact
        self.spec = spec
        self.signature = spec.signature(signature)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._run(self.check_inputs(inputs))
        return {name: np.asarray(value) for name, value in outputs.items()}

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the runner holds; the default holds nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.artifact!s}, {self.spec.name}/{self.signature.name})"

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs by the signature's names, cast to its dtypes; one clear error otherwise."""
        expected = [t.name for t in self.signature.inputs]
        missing = [n for n in expected if n not in inputs]
        extra = [n for n in inputs if n not in expected]
        if missing or extra:
            raise InvalidInputError(
                f"{self.spec.name}/{self.signature.name} takes inputs {expected},"
                f" got {sorted(inputs)}" + (f" (missing {missing})" if missing else "")
            )
        checked = {}
        for t in self.signature.inputs:
            value = np.asarray(inputs[t.name])
            want = (None, *t.shape)
            if value.ndim != len(want) or any(w is not None and w != g for w, g in zip(want, value.shape)):
                shape = "x".join("N" if d is None else str(d) for d in want)
                raise InvalidInputError(
                    f"input '{t.name}' of {self.spec.name} must have shape {shape}"
                    f" (N = batch, other None dims any size), got {value.shape}"
                )
            checked[t.name] = value.astype(t.dtype, copy=False)
        return checked

    def name_outputs(self, outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Map a backend's output names onto the signature's.

        Exported names match the spec's, sometimes with a ``:0`` suffix; a
        single output is taken whatever its name.
        """
        wanted = [t.name for t in self.signature.outputs]
        by_name = {str(k).split(":")[0]: v for k, v in outputs.items()}
        if all(n in by_name for n in wanted):
            return {n: by_name[n] for n in wanted}
        if len(wanted) == 1 and len(outputs) == 1:
            return {wanted[0]: next(iter(outputs.values()))}
        raise InvalidInputError(
            f"{self.backend} artifact {self.artifact} has outputs {sorted(by_name)},"
            f" expected {wanted} for {self.spec.name}/{self.signature.name}"
        )
