"""Client for TF Serving (and the local server): predict, metadata, status.

One channel (or keep-alive HTTP connection) is reused for every call; each
call has a deadline; UNAVAILABLE is retried with exponential backoff and full
jitter, nothing else is; errors keep the server's message. Tensor names are
read from the model's metadata, never hard-coded.

Example:
    >>> with Client("localhost:8500") as c:
    ...     sr = c.upscale("srgan", lr_image)          # HWC float32 in [-1, 1]
    ...     faces = c.generate("dcgan", n=4, seed=0)
    ...     out = c.predict("srgan", {"lr": batch}, version=2)
    >>> with Client("grpc://triton:8001", protocol="v2") as c:   # Triton / KServe v2
    ...     sr = c.upscale("srgan", lr_image)
"""

from __future__ import annotations

import random
import threading
import time
import warnings

import numpy as np

from genimg_serving.errors import InvalidArgumentError, UnavailableError
from genimg_serving.signatures import DEFAULT_SIGNATURE, ModelMetadata, SignatureInfo
from genimg_serving.transports import GrpcTransport, RestTransport, VersionStatus

DEFAULT_TIMEOUT = 30.0
PROTOCOLS = ("v1", "v2")  # KServe's names: v1 = TF Serving's API, v2 = Open Inference Protocol
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class Client:
    """A client for one server.

    Args:
        target: ``host:port`` (or ``grpc://host:port``) for gRPC, or ``http(s)://host:port``
            for HTTP.
        protocol: ``"v1"`` (TF Serving's API, the default) or ``"v2"`` (KServe's Open
            Inference Protocol: Triton, KServe runtimes), e.g.
            ``Client("grpc://triton:8001", protocol="v2")``; same calls either way. The
            schemes ``v2://host:port`` (gRPC) and ``v2+http(s)://host:port`` say it in the
            target alone (the CLI's ``--target``).
        timeout: default deadline in seconds for each call (retries included).
        tls: use TLS for gRPC (REST: use an https:// URL).
        root_certificates: PEM bytes of the CA to trust (default: system CAs).
        auth_token: sent as ``authorization: Bearer <token>``.
        max_message_bytes: gRPC send/receive limit (default 256 MiB; grpc's own is 4 MiB).
        retries: extra attempts after UNAVAILABLE.
        backoff / max_backoff: first and largest backoff in seconds (full jitter).
    """

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT, tls: bool = False,
                 root_certificates: bytes | None = None, auth_token: str | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, retries: int = 3,
                 backoff: float = 0.1, max_backoff: float = 2.0, protocol: str = "v1"):
        target, protocol = _v2_scheme(target, protocol)
        self.target, self.timeout, self.protocol = target, timeout, protocol
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        if protocol not in PROTOCOLS:
            raise InvalidArgumentError(f"protocol must be one of {', '.join(PROTOCOLS)}, not '{protocol}'")
        if protocol == "v2":
            from genimg_serving.v2 import V2Transport

            self.transport = V2Transport(target, tls=tls, auth_token=auth_token,
                                         max_message_bytes=max_message_bytes, timeout=timeout)
        elif target.startswith(("http://", "https://")):
            self.transport = RestTransport(target, root_certificates=root_certificates,
                                           auth_token=auth_token)
        else:
            self.transport = GrpcTransport(target.removeprefix("grpc://"), tls=tls, root_certificates=root_certificates,
                                           auth_token=auth_token,
                                           max_message_bytes=max_message_bytes,
                                           max_reconnect_backoff=max_backoff)
        self._signatures: dict[tuple, SignatureInfo] = {}
        self._lock = threading.Lock()

    @property
    def is_rest(self) -> bool:
        return isinstance(self.transport, RestTransport)

    @property
    def _wants_output_infos(self) -> bool:  # REST and v2 need the output names to read replies
        return not isinstance(self.transport, GrpcTransport)

    # ---- the three calls -------------------------------------------------------

    def predict(self, model: str, inputs: dict, *, version: int | None = None,
                label: str | None = None, signature: str = DEFAULT_SIGNATURE,
                output_filter: list[str] | None = None,
                timeout: float | None = None) -> dict[str, np.ndarray]:
        """Run ``signature`` of ``model`` on named inputs; outputs by name.

        Args:
            inputs: {input name: array}; arrays are cast to the signature's
                dtype where that loses no kind (float64 -> float32, int64 -> int32).
            version / label: a version number or a version label (not both);
                neither means the latest version.
            output_filter: only these outputs (all by default).
        """
        outputs, _ = self.predict_versioned(model, inputs, version=version, label=label,
                                            signature=signature, output_filter=output_filter,
                                            timeout=timeout)
        return outputs

    def predict_versioned(self, model, inputs, *, version=None, label=None,
                          signature=DEFAULT_SIGNATURE, output_filter=None, timeout=None):
        """Like ``predict``, also returning the version that answered (None over REST)."""
        _check_choice(version, label)
        sig = self.signature(model, signature, version=version, label=label, timeout=timeout)
        arrays = {k: _cast(np.asarray(v), sig.inputs.get(k)) for k, v in inputs.items()}
        kwargs = dict(version=version, label=label, signature=signature,
                      output_filter=list(output_filter or []))
        if self._wants_output_infos:
            kwargs["output_infos"] = sig.outputs
        return self._call(lambda t: self.transport.predict(model, arrays, timeout=t, **kwargs),
                          timeout)

    def metadata(self, model: str, *, version: int | None = None, label: str | None = None,
                 timeout: float | None = None) -> ModelMetadata:
        """Signatures of the model (names, dtypes, shapes) from GetModelMetadata."""
        _check_choice(version, label)
        return self._call(lambda t: self.transport.metadata(model, version=version, label=label,
                                                            timeout=t), timeout)

    def status(self, model: str, *, version: int | None = None, label: str | None = None,
               timeout: float | None = None) -> list[VersionStatus]:
        """GetModelStatus: each version's state (AVAILABLE, LOADING, END ...)."""
        _check_choice(version, label)
        return self._call(lambda t: self.transport.status(model, version=version, label=label,
                                                          timeout=t), timeout)

    def signature(self, model: str, name: str = DEFAULT_SIGNATURE, *, version=None, label=None,
                  timeout=None) -> SignatureInfo:
        """One signature of the model, fetched once and cached."""
        key = (model, name, version, label)
        with self._lock:
            cached = self._signatures.get(key)
        if cached is None:
            cached = self.metadata(model, version=version, label=label, timeout=timeout).signature(name)
            with self._lock:
                self._signatures[key] = cached
        return cached

    def wait_until_available(self, model: str, timeout: float = 60.0, version: int | None = None):
        """Poll status until a version is AVAILABLE; the last error if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = self.status(model, version=version, timeout=min(5.0, timeout))
                if any(s.state == "AVAILABLE" for s in states):
                    return states
            except Exception:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise UnavailableError(f"model {model} did not become AVAILABLE in {timeout} s")
            time.sleep(0.2)

    # ---- helpers for the zoo's tasks -------------------------------------------

    def upscale(self, model: str, image, *, signature: str = DEFAULT_SIGNATURE, **kw) -> np.ndarray:
        """Image in, image out (srgan, style, pix2pix): HWC or NHWC float32 in [-1, 1].

        The input and output names come from the signature: it must take one
        image and return at least one.
        """
        sig = self.signature(model, signature, version=kw.get("version"), label=kw.get("label"))
        if len(sig.inputs) != 1 or not next(iter(sig.inputs.values())).is_image:
            raise InvalidArgumentError(
                f"model {model} signature {signature} takes {_describe(sig.inputs)}, not one"
                " NHWC image; call predict() with named inputs")
        x = np.asarray(image, dtype=np.float32)
        single = x.ndim == 3
        out = self.predict(model, {next(iter(sig.inputs)): x[None] if single else x},
                           signature=signature, **kw)
        result = out[image_output(model, sig)]
        return result[0] if single else result

    transform = upscale  # the same call for style transfer and restoration

    def generate(self, model: str, z=None, *, class_id=None, n: int | None = None, seed: int = 0,
                 signature: str = DEFAULT_SIGNATURE, version: int | None = None,
                 version_label: str | None = None, label=None) -> np.ndarray:
        """Latent (and class id) in, NHWC images out (dcgan, vae, cgan).

        Args:
            z: latent vectors (N, D); drawn from N(0, 1) with ``seed`` if None.
            class_id: class id(s) for conditional models (int or N ints).
            n: how many images when z is None (default: len(class_id) or 1).
            label: deprecated name of ``class_id`` (everywhere else in this client,
                ``label`` is a version label, as in TF Serving).

        Example: ``client.generate("cgan", n=4, class_id=7)``
        """
        class_id = _class_id(class_id, label)
        sig = self.signature(model, signature, version=version, label=version_label)
        latents = [t for t in sig.inputs.values()
                   if t.dtype.startswith("float") and t.shape is not None and len(t.shape) == 2]
        labels = [t for t in sig.inputs.values()
                  if t.dtype.startswith(("int", "uint")) and t.shape is not None and len(t.shape) == 1]
        if len(latents) != 1 or len(latents) + len(labels) != len(sig.inputs) or len(labels) > 1:
            raise InvalidArgumentError(
                f"model {model} signature {signature} takes {_describe(sig.inputs)}, not a"
                " latent vector (and a class label); call predict() with named inputs")
        inputs = {latents[0].alias: self._latent(z, latents[0], class_id, n, seed)}
        if labels:
            if class_id is None:
                raise InvalidArgumentError(
                    f"model {model} is conditional: pass class_id= (e.g. class_id=3)")
            count = len(inputs[latents[0].alias])
            inputs[labels[0].alias] = np.broadcast_to(np.asarray(class_id, np.int64), (count,))
        elif class_id is not None:
            raise InvalidArgumentError(f"model {model} takes no class label")
        out = self.predict(model, inputs, signature=signature, version=version, label=version_label)
        return out[image_output(model, sig)]

    @staticmethod
    def _latent(z, info, class_id, n, seed) -> np.ndarray:
        if z is not None:
            return np.atleast_2d(np.asarray(z, dtype=np.float32))
        if info.shape[1] is None:
            raise InvalidArgumentError("the latent size is dynamic; pass z= explicitly")
        count = n or (np.size(class_id) if class_id is not None else 1)
        rng = np.random.default_rng(seed)
        return rng.standard_normal((count, info.shape[1])).astype(np.float32)

    # ---- plumbing --------------------------------------------------------------

    def _call(self, fn, timeout: float | None):
        """Run fn(remaining seconds); retry UNAVAILABLE with backoff until the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        attempt = 0
        while True:
            try:
                return fn(max(deadline - time.monotonic(), 0.001))
            except UnavailableError:
                pause = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
                attempt += 1
                if attempt > self.retries or time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _v2_scheme(target: str, protocol: str) -> tuple[str, str]:
    """``v2://h:p`` -> (``grpc://h:p``, "v2"); ``v2+http://h:p`` -> (``http://h:p``, "v2")."""
    for prefix, scheme in (("v2://", "grpc://"), ("v2+http://", "http://"), ("v2+https://", "https://")):
        if target.startswith(prefix):
            return scheme + target[len(prefix):], "v2"
    return target, protocol


def _check_choice(version, label) -> None:
    if version is not None and label:
        raise InvalidArgumentError(
            f"Both model version ({version}) and model version label ({label}) cannot be supplied.")


def _class_id(class_id, label):
    """``generate``'s class under its old keyword ``label`` (kept for callers' code, with a warning)."""
    if label is None:
        return class_id
    if class_id is not None:
        raise InvalidArgumentError("generate(): pass class_id= only (label= is its deprecated name)")
    warnings.warn("generate(label=) is deprecated: pass class_id= (label means a version label elsewhere)",
                  DeprecationWarning, stacklevel=3)
    return label


def _cast(array: np.ndarray, info) -> np.ndarray:
    if info is None or info.dtype == "string" or array.dtype.kind in "OSU":
        return array
    want = np.dtype(info.dtype)
    same_kind = np.can_cast(array.dtype, want, casting="same_kind")
    int_to_float = array.dtype.kind in "iub" and want.kind == "f"
    if array.dtype.kind in "iu" and want.kind in "iu" and array.size and array.dtype != want:
        _check_fits(array, want, info.alias)  # astype would wrap 2^32+5 to 5 without a word
    return array.astype(want) if array.dtype != want and (same_kind or int_to_float) else array


def _check_fits(array: np.ndarray, want: np.dtype, alias: str) -> None:
    limits = np.iinfo(want)
    low, high = array.min(), array.max()
    if int(low) < limits.min or int(high) > limits.max:
        bad = int(low) if int(low) < limits.min else int(high)
        raise InvalidArgumentError(
            f"input {alias}: value {bad} does not fit the signature's {want} (range {limits.min}..{limits.max})")


def image_output(model: str, sig: SignatureInfo) -> str:
    """The name of the signature's image output (the only output if none looks like one)."""
    images = [a for a, t in sig.outputs.items() if t.is_image]
    if images:
        return images[0]
    if len(sig.outputs) == 1:
        return next(iter(sig.outputs))
    raise InvalidArgumentError(f"model {model} signature {sig.name} returns no image: {_describe(sig.outputs)}")


def _describe(infos) -> str:
    def one(t):
        dims = "?" if t.shape is None else "x".join("?" if d is None else str(d) for d in t.shape)
        return f"{t.alias}[{t.dtype} {dims}]"
    return ", ".join(one(t) for t in infos.values()) or "nothing"
