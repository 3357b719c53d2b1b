"""Classify, Regress and MultiInference on tf.Example inputs, as TF Serving does them.

A classify or regress signature takes one DT_STRING input ("inputs") holding
serialized tf.Examples; classify outputs "classes" (string) and/or "scores"
(float), both [batch, num_classes]; regress outputs "outputs" (float, [batch]
or [batch, 1]). Checks and messages follow TF Serving's classifier.cc,
regressor.cc, util.cc and multi_inference.cc.
"""

from __future__ import annotations

import numpy as np

from genimg_serving.errors import InvalidArgumentError, UnimplementedError
from genimg_serving.protos import classification_pb2, inference_pb2, regression_pb2
from genimg_serving.server.handlers import resolve
from genimg_serving.signatures import DEFAULT_SIGNATURE

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
INPUTS, CLASSES, SCORES, OUTPUTS = "inputs", "classes", "scores", "outputs"


def serialized_examples(input_) -> np.ndarray:
    """The request's Examples serialized, each merged with the context if any."""
    kind = input_.WhichOneof("kind")
    if kind == "example_list":
        records = [e.SerializeToString() for e in input_.example_list.examples]
    elif kind == "example_list_with_context":
        listed = input_.example_list_with_context
        context = listed.context.SerializeToString()
        # Concatenated serializations parse as a merge: context first, example on top.
        records = [context + e.SerializeToString() for e in listed.examples]
    else:
        records = []
    if not records:
        raise InvalidArgumentError("Input is empty.")
    out = np.empty(len(records), dtype=object)
    out[:] = records
    return out


def _signature(servable, model_spec, method: str, what: str):
    name = model_spec.signature_name or DEFAULT_SIGNATURE
    sig = servable.signature_defs.get(name)
    if sig is None:
        raise InvalidArgumentError(f"No signature was found with the name: {name}")
    if sig.method_name != method:
        raise InvalidArgumentError(
            f"Expected {what} signature method_name to be {method}. Was: {sig.method_name}")
    return name, sig


def _check_classify(sig) -> None:
    if len(sig.inputs) != 1:
        raise InvalidArgumentError("Expected one input Tensor.")
    if len(sig.outputs) not in (1, 2):
        raise InvalidArgumentError(f"Expected one or two output Tensors, found {len(sig.outputs)}")
    if INPUTS not in sig.inputs:
        raise InvalidArgumentError("No classification inputs found in SignatureDef")
    if CLASSES not in sig.outputs and SCORES not in sig.outputs:
        raise InvalidArgumentError(
            'Expected classification signature outputs to contain at least one of "classes" or "scores".')


def _check_regress(sig) -> None:
    if len(sig.inputs) != 1:
        raise InvalidArgumentError("Expected one input Tensor.")
    if len(sig.outputs) != 1:
        raise InvalidArgumentError("Expected one output Tensor.")
    if INPUTS not in sig.inputs:
        raise InvalidArgumentError("No regression inputs found in SignatureDef")
    if OUTPUTS not in sig.outputs:
        raise InvalidArgumentError("No regression outputs found in SignatureDef")


def _classification_result(outputs: dict, n: int, result) -> None:
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for what, tensor in ((CLASSES, classes), (SCORES, scores)):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise InvalidArgumentError(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}")
        if tensor.shape[0] != n:
            raise InvalidArgumentError(f"Expected {what} output batch size of {n}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgumentError(
            "Tensors class and score should match in dim_size(1)."
            f" Got {classes.shape[1]} vs. {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    for i in range(n):
        row = result.classifications.add()
        for c in range(num_classes):
            cl = row.classes.add()
            if classes is not None:
                cl.label = _text(classes[i, c])
            if scores is not None:
                cl.score = float(scores[i, c])


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _regression_result(outputs: dict, n: int, result) -> None:
    values = outputs[OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise InvalidArgumentError(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got"
            f" {list(values.shape)}")
    if values.shape[0] != n:
        raise InvalidArgumentError(f"Input batch size did not match output batch size: {n} vs. {values.shape[0]}")
    for v in values.reshape(-1):
        result.regressions.add(value=float(v))


def _run(servable, sig_name: str, examples: np.ndarray) -> dict:
    return servable.run(sig_name, {INPUTS: examples})


def _spec(out, servable, sig_name: str) -> None:
    out.name = servable.name
    out.version.value = servable.version
    out.signature_name = sig_name


def classify(manager, request) -> classification_pb2.ClassificationResponse:
    return _single(manager, request, CLASSIFY, "classification", _check_classify, _classification_result,
                   classification_pb2.ClassificationResponse())


def regress(manager, request) -> regression_pb2.RegressionResponse:
    return _single(manager, request, REGRESS, "regression", _check_regress, _regression_result,
                   regression_pb2.RegressionResponse())


def _single(manager, request, method, kind, check, fill, response):
    """One Classify or Regress call: resolve the signature, check it, run the Examples, fill ``response``."""
    servable = resolve(manager, request.model_spec)
    name, sig = _signature(servable, request.model_spec, method, kind)
    check(sig)
    examples = serialized_examples(request.input)
    fill(_run(servable, name, examples), len(examples), response.result)
    _spec(response.model_spec, servable, name)
    return response


def multi_inference(manager, request) -> inference_pb2.MultiInferenceResponse:
    """Several classify/regress signatures of one model on the same Examples."""
    if not request.tasks:
        raise InvalidArgumentError("Expected at least one task")
    names = {t.model_spec.name for t in request.tasks}
    if "" in names:
        raise InvalidArgumentError("Found ModelSpec with an empty model name.")
    if len(names) > 1:
        raise InvalidArgumentError("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
    servable = resolve(manager, request.tasks[0].model_spec)
    plans, seen = [], set()
    for task in request.tasks:
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if name in seen:
            raise InvalidArgumentError(f"Duplicate evaluation of signature: {name}")
        seen.add(name)
        if name not in servable.signature_defs:
            raise InvalidArgumentError(f"Requested signature not found in model graph: {name}")
        if task.method_name == CLASSIFY:
            _check_classify(_signature(servable, task.model_spec, CLASSIFY, "classification")[1])
        elif task.method_name == REGRESS:
            _check_regress(_signature(servable, task.model_spec, REGRESS, "regression")[1])
        else:
            raise UnimplementedError(f"Unsupported signature method_name: {task.method_name}")
        plans.append((task.method_name, name))
    examples = serialized_examples(request.input)
    response = inference_pb2.MultiInferenceResponse()
    for method, name in plans:
        out = response.results.add()
        _spec(out.model_spec, servable, name)
        outputs = _run(servable, name, examples)
        if method == CLASSIFY:
            _classification_result(outputs, len(examples), out.classification_result)
        else:
            _regression_result(outputs, len(examples), out.regression_result)
    return response
