"""CLI commands for serving: serve (the local server), predict, status, metadata.

``serve`` runs the local TF-Serving-compatible server (development and CI;
production uses the real tensorflow/serving image, see Dockerfile.serving).
``predict``/``status``/``metadata`` talk to any TF Serving over gRPC
(``HOST:PORT``) or REST (``http://HOST:PORT``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from genimg_export.cli.app import _Command, command, renamed

# TF Serving's spellings of the flags `serve` has, accepted as given (users copy them from
# TF Serving's docs and Kubernetes manifests): TF Serving's name -> ours.
TF_SERVING_FLAGS = {
    "--model_name": "--model-name", "--model_base_path": "--model-base-path",
    "--model_config_file": "--model-config-file", "--port": "--port", "--rest_api_port": "--rest-port",
    "--enable_batching": "--enable-batching", "--batching_parameters_file": "--batching-parameters-file",
    "--file_system_poll_wait_seconds": "--poll-seconds",
}


def tf_serving_args(args: list[str]) -> list[str]:
    """Rewrite TF Serving's flag spellings to ours: ``--rest_api_port=8501`` -> ``--rest-port=8501``;
    its boolean ``--enable_batching=true|false`` -> ``--enable-batching`` or nothing."""
    rewritten = []
    for arg in args:
        name, eq, value = arg.partition("=")
        ours = TF_SERVING_FLAGS.get(name)
        if ours is None:
            rewritten.append(arg)
        elif ours == "--enable-batching":
            if value.lower() not in ("false", "0"):
                rewritten.append(ours)
        else:
            rewritten.append(ours + eq + value)
    return rewritten


class _ServeCommand(_Command):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, tf_serving_args(args))

TargetOpt = Annotated[str, typer.Option(
    "--target", "-t", help="Server address: HOST:PORT for gRPC (8500) or http(s)://HOST:PORT for REST (8501);"
    " v2://HOST:PORT or v2+http://HOST:PORT for KServe's v2 protocol (Triton: 8001, 8000).")]
ServedModelOpt = Annotated[str, typer.Option(
    "--model", "-m", help="Model name on the server (the name in models.config).")]
VersionOpt = Annotated[int | None, typer.Option(help="Version number (default: the latest).")]
VersionLabelOpt = Annotated[str | None, typer.Option(help="Version label, e.g. stable or canary.")]
TimeoutOpt = Annotated[float, typer.Option(help="Deadline per call, seconds.")]
TlsOpt = Annotated[bool, typer.Option("--tls", help="Use TLS for gRPC (for REST use https://).")]
CaOpt = Annotated[Path | None, typer.Option("--ca-cert", help="PEM file of the CA to trust (default: system CAs).")]
TokenOpt = Annotated[str | None, typer.Option(
    "--auth-token", envvar="GENIMG_SERVING_TOKEN", show_envvar=True,
    help="Bearer token (prefer the environment variable: command lines are visible to other users).")]


def _client(target, timeout, tls=False, ca_cert=None, auth_token=None):
    from genimg_export.errors import InvalidInputError
    from genimg_serving.client import Client

    if not target or target.startswith(("grpc://", "tcp://")):
        raise InvalidInputError(f"--target {target!r}: expected HOST:PORT (gRPC), http://HOST:PORT (REST)"
                                " or v2://HOST:PORT (KServe v2)")
    roots = _read(ca_cert) if ca_cert else None
    return Client(target, timeout=timeout, tls=tls, root_certificates=roots, auth_token=auth_token)


def _read(path: Path) -> bytes:
    from genimg_export.errors import NotFoundError

    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise NotFoundError(f"cannot read {path}: {e.strerror}") from e


def _calling(client, fn):
    from genimg_export.runners.grpc import serving_error
    from genimg_serving.errors import ServingError

    try:
        return fn()
    except ServingError as e:
        raise serving_error(e, client.target) from e


@command("serve", cls=_ServeCommand)
def serve(
    model_name: Annotated[str | None, typer.Option(help="Serve one model under this name...")] = None,
    model_base_path: Annotated[Path | None, typer.Option(
        help="...from this base path (numeric version folders inside, e.g. out/serving/srgan).")] = None,
    model_config_file: Annotated[Path | None, typer.Option(
        help="Or serve the models of a models.config (e.g. out/serving/models.config);"
             " re-read when it changes.")] = None,
    port: Annotated[int, typer.Option(help="gRPC port (0: any free port).")] = 8500,
    rest_port: Annotated[int, typer.Option(help="REST port (0: REST off, as in TF Serving).")] = 8501,
    host: Annotated[str, typer.Option(
        help="Interface to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    poll_seconds: Annotated[float, typer.Option(help="Look for new versions this often (0: never).")] = 1.0,
    max_in_flight: Annotated[int, typer.Option(help="Concurrent requests before RESOURCE_EXHAUSTED.")] = 32,
    max_pixels: Annotated[int, typer.Option(
        help="Most pixels (batch x H x W) of an image input per request, beyond which Predict answers"
             " RESOURCE_EXHAUSTED (0: no cap).")] = 1024 * 1024,
    warmup: Annotated[bool, typer.Option("--enable-model-warmup/--no-model-warmup",
                                         help="Replay assets.extra/tf_serving_warmup_requests on load.")] = True,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: TLS on both ports (with --tls-key).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
    auth_token: TokenOpt = None,
    enable_batching: Annotated[bool, typer.Option(
        "--enable-batching", help="Batch concurrent requests server-side, as TF Serving's --enable_batching"
        " (TF Serving's defaults unless --batching-parameters-file).")] = False,
    batching_parameters_file: Annotated[Path | None, typer.Option(
        help="BatchingParameters text, e.g. out/serving/batching_parameters.txt (implies --enable-batching).")] = None,
    max_message_bytes: Annotated[int, typer.Option(
        help="Largest gRPC message and REST body (0: TF Serving's 2 GiB - 1).")] = 256 * 1024 * 1024,
    tensor_content: Annotated[bool, typer.Option(
        "--enable-serialization-as-tensor-content",
        help="Predict replies carry numbers as tensor_content, as TF Serving's flag of that name"
             " (default: the typed fields, float_val ...).")] = False,
) -> None:
    """Serve SavedModels with TF Serving's gRPC and REST APIs (local development and CI).

    Example: `genimg-export serve --model-config-file out/serving/models.config`

    TF Serving's own spellings work too: --model_name, --model_base_path, --model_config_file,
    --port, --rest_api_port, --enable_batching, --batching_parameters_file,
    --file_system_poll_wait_seconds.

    With --batching-parameters-file out/serving/batching_parameters.txt, concurrent requests
    of equal shapes run as one batch (more requests/s under load, a little more latency alone).
    """
    import logging

    from genimg_export.errors import GenimgError, InvalidInputError
    from genimg_serving.configs import ConfigError

    # TF 2.21's oneDNN custom ops crashed the server (general protection fault in a
    # tf_Compute thread) under 8 concurrent srgan clients on an AVX-512 VNNI Xeon, in
    # seconds, 3 runs of 3; with them off, 60 s of that load passed. Must be set
    # before TensorFlow is imported; a value the user exported wins.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if bool(model_config_file) == bool(model_name or model_base_path):
        raise InvalidInputError(
            "give either --model-config-file FILE or --model-name NAME --model-base-path DIR,"
            " e.g. --model-name srgan --model-base-path out/serving/srgan")
    if not model_config_file and not (model_name and model_base_path):
        raise InvalidInputError("--model-name and --model-base-path go together"
                                " (e.g. --model-name srgan --model-base-path out/serving/srgan)")
    if min(port, rest_port, poll_seconds, max_pixels, max_message_bytes) < 0 or max_in_flight < 1:
        raise InvalidInputError("ports, --poll-seconds, --max-pixels and --max-message-bytes must be >= 0"
                                " and --max-in-flight >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("genimg_serving").setLevel(logging.INFO)
    from genimg_serving.server import BatchingOptions, ModelServer, read_batching_parameters

    try:
        batching = (read_batching_parameters(batching_parameters_file) if batching_parameters_file
                    else BatchingOptions() if enable_batching else None)
        server = ModelServer.from_flags(
            model_name, model_base_path, model_config_file, host=host, grpc_port=port,
            rest_port=rest_port or None, poll_seconds=poll_seconds, max_in_flight=max_in_flight,
            warmup=warmup, tls_cert=tls_cert, tls_key=tls_key, auth_token=auth_token,
            max_pixels=max_pixels or None, batching=batching,
            max_message_bytes=max_message_bytes or 2**31 - 1, tensor_content=tensor_content)
        server.start()
    except (ConfigError, ValueError) as e:
        raise InvalidInputError(str(e)) from e
    except OSError as e:
        raise GenimgError(str(e)) from e
    _announce(server, host)
    _wait(server)


def _announce(server, host: str) -> None:
    served = server.manager.served()
    models = ", ".join(f"{n} (versions {', '.join(map(str, v)) or 'none yet'})" for n, v in served.items())
    rest = f", REST {server.rest_url}" if server.rest_port else ""
    typer.echo(f"serving {models} on gRPC {server.target}{rest}; Ctrl-C stops", err=True)
    if server.batching is not None:
        typer.echo(f"batching: {server.batching.describe()}", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: listening on {host}: reachable from the network"
                    f"{'' if server.options['auth_token'] else ' without a token'}", err=True,
                    fg=typer.colors.YELLOW)


def _wait(server) -> None:
    import signal

    def interrupt(*_):  # docker stop / kubectl delete send SIGTERM: stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        typer.echo("stopped", err=True)


@command("status")
def status(model: ServedModelOpt, target: TargetOpt = "localhost:8500", version: VersionOpt = None,
           version_label: VersionLabelOpt = None, timeout: TimeoutOpt = 10.0, tls: TlsOpt = False,
           ca_cert: CaOpt = None, auth_token: TokenOpt = None) -> None:
    """Each version of a served model and its state (GetModelStatus).

    Example: `genimg-export status --model srgan --target localhost:8500`
    """
    with _client(target, timeout, tls, ca_cert, auth_token) as client:
        states = _calling(client, lambda: client.status(model, version=version, label=version_label))
    for s in states:
        error = "" if s.error_code == "OK" else f"  {s.error_code}: {s.error_message}"
        typer.echo(f"{model} version {s.version}: {s.state}{error}")


@command("metadata")
def metadata(model: ServedModelOpt, target: TargetOpt = "localhost:8500", version: VersionOpt = None,
             version_label: VersionLabelOpt = None, timeout: TimeoutOpt = 10.0, tls: TlsOpt = False,
             ca_cert: CaOpt = None, auth_token: TokenOpt = None) -> None:
    """Signatures of a served model: input and output names, dtypes, shapes (GetModelMetadata).

    Example: `genimg-export metadata --model srgan --target http://localhost:8501`
    """
    with _client(target, timeout, tls, ca_cert, auth_token) as client:
        md = _calling(client, lambda: client.metadata(model, version=version, label=version_label))
    typer.echo(f"{md.name} version {md.version}")
    for sig in md.signatures.values():
        typer.echo(f"  {sig.name} ({sig.method_name})")
        for kind, infos in (("in ", sig.inputs), ("out", sig.outputs)):
            for t in infos.values():
                dims = "?" if t.shape is None else "x".join("?" if d is None else str(d) for d in t.shape)
                typer.echo(f"    {kind} {t.alias}: {t.dtype} [{dims}]")


@command("predict")
def predict(
    model: ServedModelOpt,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Where to write: .png/.jpg for images, .npy or .npz for arrays. Required.")] = None,
    output_short: Annotated[Path | None, typer.Option("-o", hidden=True, help="Deprecated name of --output.")] = None,
    target: TargetOpt = "localhost:8500",
    input: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="Input file: an image or .npy; NAME=FILE for models with several inputs.")] = None,
    count: Annotated[int | None, typer.Option(help="Generators: how many images.", show_default="1")] = None,
    n: Annotated[int | None, typer.Option("--n", hidden=True, help="Deprecated name of --count.")] = None,
    seed: Annotated[int, typer.Option(help="Generators: seed of the latent vectors.")] = 0,
    class_id: Annotated[int | None, typer.Option(help="Conditional generators: the class to draw.")] = None,
    signature: Annotated[str, typer.Option(help="Signature to call.")] = "serving_default",
    version: VersionOpt = None, version_label: VersionLabelOpt = None, timeout: TimeoutOpt = 60.0,
    tls: TlsOpt = False, ca_cert: CaOpt = None, auth_token: TokenOpt = None,
) -> None:
    """Call a served model: an image in (srgan, style, pix2pix) or latents from a seed (dcgan, vae, cgan).

    Example: `genimg-export predict --target localhost:8500 --model srgan --input lr.png --output sr.png`
    """
    from genimg_export.cli import serve_io

    output = renamed(output, output_short, "-o", "--output")
    count = renamed(count, n, "--n", "--count")
    count = 1 if count is None else count
    serve_io.check_output(output)
    started = time.perf_counter()
    with _client(target, timeout, tls, ca_cert, auth_token) as client:
        sig = _calling(client, lambda: client.signature(model, signature, version=version, label=version_label))
        if input:
            inputs = serve_io.read_inputs(input, sig)
            outputs, answered = _calling(client, lambda: client.predict_versioned(
                model, inputs, version=version, label=version_label, signature=signature))
        else:
            images = _calling(client, lambda: serve_io.generate(
                client, model, sig, n=count, seed=seed, class_id=class_id, version=version,
                version_label=version_label))
            outputs, answered = images, version
    written = serve_io.write_outputs(output, outputs, sig)
    where = f"version {answered}, " if answered else ""
    typer.echo(f"wrote {written} ({where}{time.perf_counter() - started:.2f} s)")
