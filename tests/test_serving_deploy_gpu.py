"""serving/k8s/gpu agrees with Dockerfile.serving and the exported configs, as the CPU
manifests do (tests/test_serving_deploy.py): the same server flags plus the GPU ones,
one GPU per pod on GPU nodes, and a batching file TF Serving accepts and a GPU fills.

No GPU cluster runs here: these check the files, not a deployment (docs/accelerators.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genimg_serving import config_files, configs
from genimg_serving.config_protos import batching_parameters_class

yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extras) parses the k8s manifests")

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile.serving").read_text()
GPU = REPO / "serving" / "k8s" / "gpu"
GPU_FLAGS = {"--per_process_gpu_memory_fraction"}


def gpu_manifests() -> dict[str, dict]:
    docs = [d for f in sorted(GPU.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return {d["kind"]: d for d in docs}


def container() -> dict:
    (c,) = gpu_manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def flags(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args)


def image_flags() -> dict[str, str]:
    return dict(re.findall(r'"(--[a-z_]+)=([^"]*)"', DOCKERFILE.split("ENTRYPOINT", 1)[1]))


def batching_file():
    from google.protobuf import text_format

    text = gpu_manifests()["ConfigMap"]["data"][configs.BATCHING_FILE]
    return text_format.Parse(text, batching_parameters_class()())


def check_batching(params) -> list[str]:
    """What is wrong with a GPU batching file (TF Serving refuses the first two at load)."""
    sizes, top = list(params.allowed_batch_sizes), params.max_batch_size.value
    problems = []
    if sizes != sorted(set(sizes)):
        problems.append(f"allowed_batch_sizes not strictly ascending: {sizes}")
    if sizes and sizes[-1] != top:
        problems.append(f"last allowed batch size {sizes[-1]} != max_batch_size {top}")
    if top <= config_files.BATCHING_DEFAULTS["max_batch_size"]:
        problems.append(f"max_batch_size {top} is no larger than the CPU file's")
    return problems


def test_the_gpu_image_is_the_tf_serving_gpu_build():
    assert "VARIANT=-gpu" in DOCKERFILE
    assert re.search(r"^FROM tensorflow/serving:\$\{TF_SERVING_VERSION\}\$\{VARIANT\}$", DOCKERFILE, re.M)
    assert container()["image"].endswith("-gpu")
    assert "--build-arg VARIANT=-gpu" in (GPU / "deployment.yaml").read_text()


def test_the_command_is_the_image_entrypoint_plus_the_gpu_flags():
    c = container()
    assert c["command"] == [re.search(r'ENTRYPOINT \["(\w+)"', DOCKERFILE).group(1)]
    given, image = flags(c["args"]), image_flags()
    assert set(given) - set(image) == GPU_FLAGS
    assert set(image) <= set(given)
    assert {k: v for k, v in given.items() if k in image and v != image[k]} == {
        "--batching_parameters_file": f"/config/gpu/{configs.BATCHING_FILE}"}
    assert 0 < float(given["--per_process_gpu_memory_fraction"]) <= 1


def test_the_batching_file_is_mounted_where_the_flag_points():
    pod = gpu_manifests()["Deployment"]["spec"]["template"]["spec"]
    (mount,) = container()["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == gpu_manifests()["ConfigMap"]["metadata"]["name"]
    path = flags(container()["args"])["--batching_parameters_file"]
    assert path == f"{mount['mountPath']}/{configs.BATCHING_FILE}"


def test_one_gpu_per_pod_on_gpu_nodes():
    pod = gpu_manifests()["Deployment"]["spec"]["template"]["spec"]
    res = container()["resources"]
    assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_gpu_batching_parses_and_is_sized_for_a_gpu():
    assert check_batching(batching_file()) == []


def test_the_batching_check_catches_a_bad_file():
    params = batching_file()
    params.allowed_batch_sizes.append(16)  # not ascending, and no longer ends at max_batch_size
    params.max_batch_size.value = 4
    assert len(check_batching(params)) == 3


def test_probes_ports_service_and_prometheus_agree_with_the_cpu_manifests():
    m, c = gpu_manifests(), container()
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 8500, "http": 8501}
    model = re.search(r"^ARG MODEL_NAME=(\S+)$", DOCKERFILE, re.M).group(1)
    assert c["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model}/metadata"
    labels = m["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert m["Deployment"]["spec"]["selector"]["matchLabels"] == labels == m["Service"]["spec"]["selector"]
    assert {(p["port"], p["targetPort"]) for p in m["Service"]["spec"]["ports"]} == {(8500, "grpc"), (8501, "http")}
    notes = m["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/path"] == configs.PROMETHEUS_PATH
