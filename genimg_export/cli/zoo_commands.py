"""CLI commands for the zoo: models, train, evaluate, generate."""

from __future__ import annotations

import inspect
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from genimg_export.cli.app import CustomObjectsOpt, ModelOpt, UnsafeOpt, WeightsOpt, command, renamed


@command("models")
def models() -> None:
    """List the zoo: task, inputs -> outputs, and whether trained weights ship.

    Example: `genimg-export models`
    """
    from genimg_export.zoo import registry

    for name in registry.names():
        spec = registry.get(name)
        weights = "weights ✓" if spec.has_weights else "no weights (train them)"
        typer.echo(f"{name:<8} {spec.task:<15} {weights}")
        typer.echo(f"         {spec.description}")
        for sig in spec.signatures:
            ins = ", ".join(_fmt(t) for t in sig.inputs)
            outs = ", ".join(_fmt(t) for t in sig.outputs)
            typer.echo(f"         {sig.name}: {ins} -> {outs}")


def _fmt(t) -> str:
    dims = "x".join("?" if d is None else str(d) for d in t.shape)
    return f"{t.name}[{t.dtype} {dims}]"


class Prelu(str, Enum):
    channel = "channel"
    shared = "shared"


class Strategy(str, Enum):
    auto = "auto"
    one = "one"
    mirrored = "mirrored"
    multiworker = "multiworker"
    tpu = "tpu"


@command("train")
def train(
    model: ModelOpt,
    out: Annotated[Path, typer.Option(
        help="Directory for NAME.keras, NAME.card.json, checkpoints/ and logs/ (TensorBoard).")],
    steps: Annotated[int | None, typer.Option(
        help="Optimisation steps (default: the model's own; 300 with --init-from).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same weights.")] = 0,
    style: Annotated[str | None, typer.Option(
        help="style only: a bundled texture (brick, gravel, grass) or your image file.")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Your images: a folder (srgan/style/dcgan/vae: images; pix2pix: input/ + target/ pairs or images;"
             " cgan: one sub-folder per class) or .tfrecord shards. Default: the shipped data.")] = None,
    val: Annotated[Path | None, typer.Option(
        help="Validation images scored with the model's metric (default: every 10th file of --data).")] = None,
    init_from: Annotated[str | None, typer.Option(
        help="Fine-tune: the model's name (its shipped weights) or a .keras file.")] = None,
    lr: Annotated[float | None, typer.Option(
        help="Learning rate (default: the model's own; a tenth of it with --init-from).")] = None,
    batch: Annotated[int | None, typer.Option(
        help="Global batch, split across replicas (default: the model's own).")] = None,
    checkpoint_every: Annotated[int, typer.Option(
        help="Save a checkpoint every N steps (and on Ctrl-C/SIGTERM).")] = 100,
    eval_every: Annotated[int | None, typer.Option(
        help="Score the validation images every N steps (default: at the end).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue from the last checkpoint in OUT/checkpoints, exactly.")] = False,
    strategy: Annotated[Strategy, typer.Option(
        help="tf.distribute: one device, mirrored (all GPUs), multiworker (TF_CONFIG), tpu, or auto.")] = Strategy.one,
    mixed_precision: Annotated[bool, typer.Option(help="bfloat16 compute, float32 weights (GPUs, TPUs).")] = False,
    prelu: Annotated[Prelu | None, typer.Option(
        help="srgan only: a PReLU alpha per channel, or one per layer (shared: exported as LeakyRelu, faster in int8)."
             " Default: the model's own.")] = None,
) -> None:
    """Train a zoo model on shipped data or your own images, from scratch or
    fine-tuned from the shipped weights (deterministic for a seed; resumable).

    Fine-tuning (`--init-from`) defaults to 300 steps at a tenth of the model's
    learning rate. Examples: `genimg-export train --model dcgan --steps 3000 --out weights/`,
    `genimg-export train --model srgan --data photos/ --init-from srgan --out ft/`
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from genimg_export import train as training
    from genimg_export.cli import noise
    from genimg_export.zoo import registry

    spec = registry.get(model)
    run = training.RunOptions(data=data, val=val, init_from=init_from, lr=lr, batch=batch,
                              checkpoint_every=checkpoint_every, eval_every=eval_every, resume=resume,
                              strategy=strategy.value, mixed_precision=mixed_precision)
    steps = training.default_steps(spec, run) if steps is None else steps
    if steps <= 0:
        from genimg_export.errors import InvalidInputError

        raise InvalidInputError(f"--steps must be a positive number of steps, got {steps}")
    columns = (
        TextColumn(f"train {spec.name}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    options = {}
    if style is not None:
        if spec.name != "style":
            from genimg_export.errors import InvalidInputError

            raise InvalidInputError(f"--style applies to the 'style' model only, not '{spec.name}'")
        options["style"] = style
    if prelu is not None:
        if "prelu" not in inspect.signature(spec.build).parameters:
            from genimg_export.errors import InvalidInputError

            raise InvalidInputError(f"--prelu applies to models built with PReLU (srgan), not '{spec.name}'")
        options["prelu"] = prelu.value
    quiet = noise.quiet()
    with Progress(*columns, transient=False, disable=quiet) as bar:
        task = bar.add_task("train", total=steps, loss="", rate="")

        plain = not quiet and not bar.console.is_terminal  # logs (CI, nohup): a line every 5%

        def progress(step, losses):
            if step % 10 == 0 or step == steps:
                loss = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
                speed = bar.tasks[task].speed or 0.0
                bar.update(task, completed=step, loss=loss, rate=f"{speed:.2f} steps/s")
                if plain and step % max(1, steps // 20) < 10:
                    print(f"train {spec.name} {step}/{steps} {loss} {speed:.2f} steps/s", flush=True)

        card = training.train(spec, steps, out, seed=seed, progress=progress, run=run, **options)
    typer.echo(f"wrote {Path(out) / (spec.name + '.keras')} in {card['train_seconds']} s")
    if card["data_skipped"]:
        typer.echo(f"skipped {len(card['data_skipped'])} unreadable image(s), e.g. {card['data_skipped'][0]}")
    typer.echo("evaluation: " + json.dumps(card["evaluation"]))


@command("evaluate")
def evaluate(
    model: ModelOpt,
    weights: WeightsOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
) -> None:
    """Measure quality on held-out data (PSNR gain, class accuracy, style ratio...).

    Example: `genimg-export evaluate --model srgan --json srgan-eval.json`
    """
    from genimg_export.errors import InvalidInputError
    from genimg_export.fs import check_output_file
    from genimg_export.zoo import loading, registry

    check_output_file(json_out, "--json")
    spec = registry.get(model)
    if spec.evaluate is None:
        raise InvalidInputError(f"model '{spec.name}' has no evaluation")
    keras_model = loading.load_model(spec, weights)
    metrics = spec.evaluate(keras_model)
    for k, v in metrics.items():
        typer.echo(f"{k:<24} {v}")
    if spec.quality_target is not None:
        key, op, bound = spec.quality_target
        typer.echo(f"target: {key} {op} {bound} {'met' if spec.meets_quality_target(metrics) else 'NOT met'}")
    if json_out is not None:
        _write_json(json_out, {"model": spec.name, **metrics})


def _write_json(path: Path, obj) -> None:
    from genimg_export import fs

    fs.write_json(path, obj)


@command("generate")
def generate(
    model: ModelOpt,
    output: Annotated[Path | None, typer.Option(
        "--output", help="PNG to write (a grid for generators).", show_default="generated.png")] = None,
    output_short: Annotated[Path | None, typer.Option("-o", hidden=True, help="Deprecated name of --output.")] = None,
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Input image for srgan/style/pix2pix.")] = None,
    count: Annotated[int, typer.Option(help="Number of samples for generators.")] = 16,
    class_id: Annotated[int | None, typer.Option(help="Digit class 0-9 for cgan (default: 0..9 cycling).")] = None,
    label: Annotated[int | None, typer.Option(hidden=True, help="Deprecated name of --class-id.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for latent vectors.")] = 0,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write each sample as its own PNG here (+ labels.csv for cgan).")] = None,
    weights: WeightsOpt = None,
    allow_unsafe: UnsafeOpt = False,
    custom_objects: CustomObjectsOpt = None,
) -> None:
    """Run the Keras model: a sample grid for dcgan/vae/cgan, an output image for
    srgan/style/pix2pix.

    Examples: `genimg-export generate --model cgan --class-id 7 --output sevens.png`,
    `genimg-export generate --model srgan --input lr.png --output sr.png`
    """
    from genimg_export import generation
    from genimg_export.zoo import loading

    output = renamed(output, output_short, "-o", "--output") or Path("generated.png")
    class_id = renamed(class_id, label, "--label", "--class-id")
    spec = loading.get_spec(model, allow_unsafe)
    generation.check(spec, output, input, count, class_id)  # before TensorFlow loads the model
    keras_model = loading.load_model(spec, weights, allow_unsafe)
    written = generation.generate(spec, keras_model, output, input, count, class_id, seed, out_dir)
    for path in written:
        typer.echo(f"wrote {path}")
