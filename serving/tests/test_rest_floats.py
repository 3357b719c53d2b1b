"""float32 outputs over REST are written as TF Serving writes them (json_tensor.cc WriteDecimal):
the 6-digit decimal when it reads back as the same float32, else the 9-digit one; the value a
client parses is then the float32 exactly, and the text is the short decimal."""

from __future__ import annotations

import json

import numpy as np

from genimg_serving.rest_json import dumps, to_json


def _written(values) -> str:
    return dumps(to_json(np.asarray(values, np.float32))).decode()


def test_short_decimals_as_tf_serving_writes_them():
    assert _written([0.1, 0.2, 3.0, 3.5, -0.7, 1e-5]) == "[0.1,0.2,3.0,3.5,-0.7,1e-05]"
    assert _written([1 / 3, 0.123456789]) == "[0.333333343,0.123456791]"  # 6 digits do not read back: 9
    assert _written([np.nan, np.inf, -np.inf, 0.0, -0.0]) == "[NaN,Infinity,-Infinity,0.0,-0.0]"


def test_every_finite_float32_reads_back_bit_exact():
    """Random bit patterns: normal, subnormal, huge and tiny values, both signs."""
    bits = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint32)
    values = bits.view(np.float32)[np.isfinite(bits.view(np.float32))]
    back = np.asarray(json.loads(_written(values)), np.float64).astype(np.float32)
    np.testing.assert_array_equal(back.view(np.uint32), values.view(np.uint32))


def test_float64_outputs_keep_their_full_precision():
    assert dumps(to_json(np.float64([0.1, 1 / 3]))).decode() == "[0.1,0.3333333333333333]"


def test_nested_shapes_are_kept():
    assert _written(np.full((2, 1, 2), 0.1)) == "[[[0.1,0.1]],[[0.1,0.1]]]"
    assert _written(np.float32(2.5)) == "2.5"
