"""serving/k8s/kserve: InferenceServices that KServe accepts and that point at what the export writes.

kubectl and KServe do not run here. The field names are checked against an allow-list
taken from KServe's Go types (serving.kserve.io/v1beta1), read from kserve/kserve:
- pkg/apis/serving/v1beta1/component.go: ComponentExtensionSpec (minReplicas, maxReplicas,
  scaleTarget, scaleMetric ... json tags), ScaleMetric enum;
- pkg/apis/serving/v1beta1/predictor.go: PredictorSpec (one framework field, or ``model``),
  PredictorExtensionSpec (storageUri, runtimeVersion, protocolVersion, storage, the inlined
  corev1.Container);
- pkg/apis/serving/v1beta1/predictor_model.go: ModelSpec (modelFormat {name, version}, runtime).
Paths, names and numbers are cross-checked against genimg_serving's config files and the
Triton repository layout, as tests/test_serving_deploy.py does for the plain manifests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genimg_serving import config_files, configs

yaml = pytest.importorskip("yaml", reason="PyYAML (in the test extras) parses the manifests")

KSERVE = Path(__file__).resolve().parents[1] / "serving" / "k8s" / "kserve"
MOUNT = "/mnt/models"  # where KServe's storage initializer puts storageUri (its runtimes' model path)

COMPONENT_EXTENSION = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
                       "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
                       "annotations", "deploymentStrategy"}
PREDICTOR = {"sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm",
             "paddle", "model", "workerSpec"}
POD_SPEC = {"containers", "volumes", "nodeSelector", "tolerations", "affinity", "serviceAccountName",
            "imagePullSecrets", "securityContext", "priorityClassName"}  # the part of corev1.PodSpec we allow
CONTAINER = {"name", "image", "command", "args", "env", "envFrom", "ports", "resources", "volumeMounts",
             "readinessProbe", "livenessProbe", "startupProbe", "securityContext", "imagePullPolicy"}
ALLOWED = {
    (): {"apiVersion", "kind", "metadata", "spec"},
    ("metadata",): {"name", "namespace", "labels", "annotations"},
    ("spec",): {"predictor", "transformer", "explainer"},
    ("spec", "predictor"): COMPONENT_EXTENSION | PREDICTOR | POD_SPEC,
    ("spec", "predictor", "model"): {"modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion",
                                     "storage"} | CONTAINER,
    ("spec", "predictor", "model", "modelFormat"): {"name", "version"},
    ("spec", "predictor", "model", "resources"): {"requests", "limits", "claims"},
}
FREE_MAPS = {("metadata", "labels"), ("metadata", "annotations"), ("spec", "predictor", "annotations"),
             ("spec", "predictor", "labels"), ("spec", "predictor", "model", "resources", "requests"),
             ("spec", "predictor", "model", "resources", "limits")}
SCALE_METRICS = {"cpu", "memory", "concurrency", "rps"}  # component.go ScaleMetric enum
PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}  # constants.InferenceServiceProtocol
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # InvalidISVCNameFormatError's rule


def unknown_fields(doc, path=()) -> list[str]:
    """Every key of ``doc`` that the allow-list does not name, as a dotted path."""
    if path in FREE_MAPS or not isinstance(doc, dict):
        return []
    allowed = ALLOWED.get(path)
    if allowed is None:
        return []  # values below a leaf (args lists, quantities) are checked by the tests themselves
    found = [".".join([*path, k]) for k in doc if k not in allowed]
    for key, value in doc.items():
        found += unknown_fields(value, (*path, key))
    return found


def services() -> dict[str, dict]:
    docs = {f.stem: yaml.safe_load(f.read_text()) for f in sorted(KSERVE.glob("*.yaml"))}
    assert set(docs) == {"tensorflow", "triton"}
    return docs


@pytest.mark.parametrize("which", ["tensorflow", "triton"])
def test_fields_are_kserve_v1beta1_inference_service_fields(which):
    doc = services()[which]
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert unknown_fields(doc) == []
    predictor = doc["spec"]["predictor"]
    assert NAME.match(doc["metadata"]["name"])
    assert predictor["scaleMetric"] in SCALE_METRICS
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleTarget"] == config_files.BATCHING_DEFAULTS["max_batch_size"]
    model = predictor["model"]
    assert model.get("protocolVersion", "v1") in PROTOCOLS
    assert model["storageUri"].startswith(("gs://", "s3://", "pvc://", "https://"))
    assert set(model["resources"]) == {"requests", "limits"}


def test_the_allow_list_catches_a_misspelt_field():
    doc = services()["triton"]
    doc["spec"]["predictor"]["minReplica"] = 1
    doc["spec"]["predictor"]["model"]["storageURI"] = "gs://x"
    doc["spec"]["predictor"]["model"]["modelFormat"]["flavour"] = "onnx"
    assert unknown_fields(doc) == ["spec.predictor.minReplica", "spec.predictor.model.storageURI",
                                   "spec.predictor.model.modelFormat.flavour"]


def test_tensorflow_service_points_tf_serving_at_the_exported_files():
    from genimg_export.artifacts.formats import FORMATS

    doc = services()["tensorflow"]
    model = doc["spec"]["predictor"]["model"]
    name = doc["metadata"]["name"]
    assert model["modelFormat"]["name"] == "tensorflow"
    assert model["storageUri"].rstrip("/").endswith("/" + FORMATS["saved_model"].folder)  # the whole serving/
    flags = dict(a.split("=", 1) for a in model["args"])
    assert flags["--model_base_path"] == f"{MOUNT}/{name}"  # the model's folder inside serving/
    assert flags["--batching_parameters_file"] == f"{MOUNT}/{configs.BATCHING_FILE}"
    assert flags["--monitoring_config_file"] == f"{MOUNT}/{configs.MONITORING_CONFIG}"
    assert flags["--enable_batching"] == "true" and flags["--enable_model_warmup"] == "true"
    annotations = doc["spec"]["predictor"]["annotations"]
    assert annotations["prometheus.kserve.io/path"] == configs.PROMETHEUS_PATH
    dockerfile = (KSERVE.parents[2] / "Dockerfile.serving").read_text()
    assert name == re.search(r"^ARG MODEL_NAME=(\S+)$", dockerfile, re.M).group(1)


def test_tensorflow_service_files_exist_where_the_args_say_in_a_real_export(tmp_path):
    """The layout the args assume is the one config_files writes: serving/<files> beside serving/<model>/."""
    doc = services()["tensorflow"]
    name = doc["metadata"]["name"]
    serving = tmp_path / "serving"
    (serving / name / "1").mkdir(parents=True)
    config_files.update(serving, name)
    for arg in doc["spec"]["predictor"]["model"]["args"]:
        value = arg.split("=", 1)[1]
        if value.startswith(MOUNT):
            assert (serving / value.removeprefix(MOUNT + "/")).exists(), arg


def test_triton_service_serves_the_repository_over_v2():
    from genimg_export.artifacts.layout import TRITON_FOLDER as FOLDER

    model = services()["triton"]["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "triton" and model["protocolVersion"] == "v2"
    assert model["storageUri"].rstrip("/").endswith("/" + FOLDER)
    assert "args" not in model  # batching, instances and warm-up live in each config.pbtxt
