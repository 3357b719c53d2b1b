"""The zoo: registry completeness, build, .keras round trip, shapes and ranges,
and that training lowers the loss. Parametrized from the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genimg_export.zoo import registry

NOT_MODELS = {"__init__", "spec", "registry", "loading", "layers", "user", "gan", "data", "digit_classifier",
              "keras_file", "user_data", "data_stream", "distribute"}
ZOO_DIR = Path(registry.__file__).parent


def test_every_model_module_is_registered_under_its_own_name():
    modules = {p.stem for p in ZOO_DIR.glob("*.py")} - NOT_MODELS
    assert modules == set(registry.ZOO_MODULES)
    assert sorted(registry.names()) == sorted(modules)


def test_unknown_name_suggests_the_nearest():
    from genimg_export.errors import NotFoundError

    with pytest.raises(NotFoundError, match="did you mean 'srgan'"):
        registry.get("srgann")


@pytest.fixture(scope="module", params=registry.names())
def built(request):
    spec = registry.get(request.param)
    return spec, spec.build()


def _size(spec):
    """A small non-square size that respects the model's spatial multiple."""
    if not spec.dynamic_spatial:
        return None
    m = spec.spatial_multiple
    return (-(-16 // m) * m, -(-24 // m) * m)


def test_outputs_have_declared_names_shapes_and_range(built):
    spec, model = built
    for sig in spec.signatures:
        inputs = (spec.sample_inputs(3, 0, sig.name, _size(spec)) if spec.dynamic_spatial
                  else spec.sample_inputs(3, 0, sig.name))
        assert set(inputs) == {t.name for t in sig.inputs}
        outputs = sig.call(model, inputs)
        assert list(outputs) == [t.name for t in sig.outputs]
        for t in sig.outputs:
            y = np.asarray(outputs[t.name])
            expected = tuple(d if d is not None else None for d in t.shape)
            if spec.dynamic_spatial:
                h, w = _size(spec)
                expected = (h * spec.scale, w * spec.scale, *t.shape[2:])
            assert y.shape == (3, *expected), t.name
            assert np.isfinite(y).all()
            if t.value_range:
                lo, hi = t.value_range
                margin = 0.5 * (hi - lo)  # srgan's bicubic skip may overshoot slightly
                assert lo - margin <= y.min() and y.max() <= hi + margin


def test_keras_round_trip_in_safe_mode(built, tmp_path):
    from genimg_export.zoo.loading import load_keras

    spec, model = built
    path = tmp_path / f"{spec.name}.keras"
    model.save(path)
    loaded = load_keras(path)
    sig = spec.default_signature
    inputs = spec.sample_inputs(2, 1, sig.name, _size(spec)) if spec.dynamic_spatial else spec.sample_inputs(2, 1)
    a, b = sig.call(model, inputs), sig.call(loaded, inputs)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


# The loss that must fall within a few steps, per model (GANs: the discriminator's).
FALLING_LOSS = {"srgan": "l1", "pix2pix": "l1", "vae": "recon", "style": "loss", "dcgan": "d_loss", "cgan": "d_loss"}


@pytest.mark.parametrize("name", registry.names())
def test_a_few_training_steps_lower_the_loss(name):
    from genimg_export.train import seed_everything

    spec = registry.get(name)
    assert name in FALLING_LOSS, "add the model's main loss to FALLING_LOSS"
    seed_everything(0)
    trainer = spec.make_trainer(spec.build(), 0)
    losses = [float(trainer.step()[FALLING_LOSS[name]]) for _ in range(12)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


@pytest.mark.parametrize("name", registry.names())
def test_shipped_weights_and_card(name):
    import json

    spec = registry.get(name)
    if not spec.weights_path.exists():
        pytest.fail(f"{name} ships no weights at {spec.weights_path}")
    card = json.loads(spec.card_path.read_text())
    assert card["model"] == name
    assert card["command"].startswith(f"genimg-export train --model {name} ")
    assert card["train_seconds"] < 30 * 60


@pytest.mark.parametrize("name", registry.names())
def test_shipped_weights_meet_quality_target(name):
    """Re-evaluate the shipped weights here: the card's figures are reproduced and meet the target."""
    import json

    from genimg_export.zoo import loading

    spec = registry.get(name)
    card = json.loads(spec.card_path.read_text())
    metrics = spec.evaluate(loading.load_model(spec))
    key = spec.quality_target[0]
    assert spec.meets_quality_target(metrics), (spec.quality_target, metrics)
    assert metrics[key] == pytest.approx(card["evaluation"][key], abs=0.02)
