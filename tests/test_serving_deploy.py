"""Dockerfile.serving, serving/k8s and the exported configs agree (names, ports, paths).

Docker and kubectl do not run here, so this checks what can be checked: the
files parse, the release matches our TensorFlow, the flags name the files the
exporters write, ports and probe paths line up, and the health check command
itself is run against a live (local) server.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from genimg_serving import config_files, configs

yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extras) parses the k8s manifests")

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile.serving").read_text()
K8S = REPO / "serving" / "k8s"


def manifests() -> dict[str, dict]:
    docs = [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return {d["kind"]: d for d in docs}


def entrypoint_flags() -> dict[str, str]:
    args = re.findall(r'"(--[a-z_]+)(?:=([^"]*))?"', DOCKERFILE.split("ENTRYPOINT", 1)[1])
    return dict(args)


def test_image_is_tf_serving_pinned_to_our_tensorflow_with_a_gpu_switch():
    version = re.search(r"^ARG TF_SERVING_VERSION=(\S+)$", DOCKERFILE, re.M).group(1)
    tf_version = importlib.metadata.version("tensorflow")
    assert version.split(".")[:2] == tf_version.split(".")[:2], (version, tf_version)
    assert re.search(r"^ARG VARIANT=$", DOCKERFILE, re.M)
    assert re.search(r"^FROM tensorflow/serving:\$\{TF_SERVING_VERSION\}\$\{VARIANT\}$", DOCKERFILE, re.M)
    assert "VARIANT=-gpu" in DOCKERFILE


def test_flags_name_the_files_the_exporters_write():
    flags = entrypoint_flags()
    mount = configs.MOUNT
    assert re.search(rf"^COPY \$\{{EXPORT_DIR\}}/ {mount}/$", DOCKERFILE, re.M)
    assert flags["--model_config_file"] == f"{mount}/{configs.MODELS_CONFIG}"
    assert flags["--batching_parameters_file"] == f"{mount}/{configs.BATCHING_FILE}"
    assert flags["--monitoring_config_file"] == f"{mount}/{configs.MONITORING_CONFIG}"
    assert flags["--enable_batching"] == "true" and flags["--enable_model_warmup"] == "true"
    assert (flags["--port"], flags["--rest_api_port"]) == ("8500", "8501")
    assert re.search(r"^EXPOSE 8500 8501$", DOCKERFILE, re.M)


def test_deployment_probes_ports_and_prometheus_agree():
    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    model = re.search(r"^ARG MODEL_NAME=(\S+)$", DOCKERFILE, re.M).group(1)
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == "http" and get["path"].startswith(f"/v1/models/{model}")
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model}/metadata"
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] == "8501"
    assert notes["prometheus.io/path"] == configs.PROMETHEUS_PATH
    assert deployment["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    tag = re.search(r"docker build -f Dockerfile.serving .* -t (\S+) \.", DOCKERFILE).group(1)
    assert container["image"] == tag


def test_service_and_autoscaler_point_at_the_deployment():
    m = manifests()
    deployment, service, hpa = m["Deployment"], m["Service"], m["HorizontalPodAutoscaler"]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {(8500, "grpc"), (8501, "http")}
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_exported_monitoring_config_serves_the_scraped_path():
    config = config_files.monitoring()
    assert config.prometheus_config.enable
    assert config.prometheus_config.path == manifests()["Deployment"]["spec"]["template"][
        "metadata"]["annotations"]["prometheus.io/path"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the health check is a bash command")
def test_healthcheck_command_passes_on_an_available_model_and_fails_otherwise(tmp_path):
    """Run the HEALTHCHECK's own command against the local server (its port swapped in)."""
    import json

    from genimg_serving.configs import single_model
    from genimg_serving.server import ModelServer

    cmd = json.loads(re.search(r"CMD (\[.*\])\s*$", DOCKERFILE.split("HEALTHCHECK", 1)[1].split("ENTRYPOINT")[0],
                               re.S).group(1))
    _write_tiny_model(tmp_path / "1")
    with ModelServer(single_model("srgan", tmp_path), grpc_port=0, rest_port=0, poll_seconds=0) as server:
        script = cmd[-1].replace("/8501", f"/{server.rest_port}")
        ok = subprocess.run([*cmd[:-1], script], env={"HEALTH_MODEL": "srgan"}, timeout=30)
        missing = subprocess.run([*cmd[:-1], script], env={"HEALTH_MODEL": "nope"}, timeout=30)
    assert (ok.returncode, missing.returncode != 0) == (0, True)


def _write_tiny_model(path: Path) -> None:
    import tensorflow as tf

    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 2 * x}

    module = Double()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
