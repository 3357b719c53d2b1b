"""Export every zoo model with its shipped weights, check parity, and print the
README's tables (export sizes and times, parity, quality).

    python benchmarks/zoo_report.py OUT_DIR > benchmarks/zoo_report.md

Also draws OUT_DIR/zoo.png: what each shipped model does, on held-out data.

Runs the same CLI a user runs (`genimg-export all`, `parity --json`,
`evaluate --json`) and keeps the JSON next to the exports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MODELS = ("dcgan", "vae", "cgan", "srgan", "style", "pix2pix")
VARIANTS = [("saved_model", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"),
            ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]


def cli(*args: str) -> None:
    print("$ genimg-export", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(["genimg-export", *args], check=False, stdout=subprocess.DEVNULL)


def run(out: Path) -> None:
    for name in MODELS:
        cli("all", "--model", name, "--out", str(out))
        cli("parity", "--model", name, "--out", str(out), "--json", str(out / f"parity.{name}.json"),
            "--report", str(out / f"parity.{name}.png"))
        cli("evaluate", "--model", name, "--json", str(out / f"quality.{name}.json"))


def export_table(out: Path) -> list[str]:
    entries = json.loads((out / "manifest.json").read_text())["artifacts"]
    by_key = {(e["model"], e["format"], e["variant"]): e for e in entries}
    head = "| model | " + " | ".join(f"{f} {v}" for f, v in VARIANTS) + " |"
    lines = [head, "|---" * (len(VARIANTS) + 1) + "|"]
    for name in MODELS:
        cells = []
        for fmt, variant in VARIANTS:
            e = by_key.get((name, fmt, variant))
            cells.append("✗" if e is None else f"{e['bytes'] / 1e6:.2f} MB, {e['seconds']:.0f} s"
                         + (" (fixed)" if e.get("fixed_size") else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def parity_cell(rows: list[dict]) -> str:
    """Worst row of one backend/variant: max abs for fp32, PSNR for the rest."""
    if not rows:
        return "-"
    ok = "✓" if all(r["passed"] for r in rows) else "✗"
    if rows[0]["variant"] in ("fp32", None):
        return f"{ok} {max(r['max_abs'] for r in rows):.1e}"
    return f"{ok} {min(r['psnr_db'] for r in rows):.1f} dB"


def parity_table(out: Path) -> list[str]:
    lines = ["| model | " + " | ".join(f"{f} {v}" for f, v in VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    for name in MODELS:
        rows = json.loads((out / f"parity.{name}.json").read_text())["rows"]
        cells = [parity_cell([r for r in rows if (r["backend"], r["variant"]) == key]) for key in VARIANTS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def quality_table(out: Path) -> list[str]:
    from genimg_export.zoo import registry

    lines = ["| model | target | measured | other figures |", "|---|---|---|---|"]
    for name in MODELS:
        q, spec = json.loads((out / f"quality.{name}.json").read_text()), registry.get(name)
        key, op, bound = spec.quality_target
        value, met = q[key], spec.meets_quality_target(q)
        others = ", ".join(f"{k} {v}" for k, v in q.items() if k != key and not isinstance(v, (dict, list)))
        lines.append(f"| {name} | {key} {op} {bound} | {'✓' if met else '✗'} {value} | {others} |")
    return lines


def zoo_sheet(path: Path) -> None:
    """One row per model, 128 px tall: generator grids, and input -> output for
    the image models (held-out astronaut; srgan from a x4-downscaled crop)."""
    from genimg_edge.images import grid
    from genimg_export.zoo import data, loading, registry

    face = data.photos("held_out")[0][24:280, 120:376]  # 256x256 around the astronaut's face
    small = data.resize(face[None], 128, 128)
    inputs = {"srgan": data.resize(face[None], 32, 32), "style": small,
              "pix2pix": data.degrade(small.copy(), np.random.default_rng(0))}
    rows = []
    for name in MODELS:
        spec = registry.get(name)
        sig, model = spec.default_signature, loading.load_model(spec)
        if name in inputs:  # input (srgan's: bicubic x4, for comparison) beside output
            x = inputs[name]
            y = np.asarray(sig.call(model, {sig.inputs[0].name: x})[sig.outputs[0].name])
            rows.append(grid(np.concatenate([data.resize(x, 128, 128), y]), cols=2))
        else:  # 8 samples from seeded latents (cgan: labels 0-7)
            y = np.asarray(sig.call(model, spec.sample_inputs(8, 0))[sig.outputs[0].name])
            rows.append(np.repeat(grid(data.resize(y, 64, 64), cols=4), 3, axis=-1))
    save_labelled(path, rows)


def save_labelled(path: Path, rows: list[np.ndarray], label_width: int = 70) -> None:
    """Stack image rows (in [-1, 1]) under one another with the model's name on the left."""
    from PIL import Image, ImageDraw

    from genimg_edge.images import to_uint8

    width = max(r.shape[1] for r in rows) + label_width
    padded = [np.pad(r, ((0, 0), (label_width, width - label_width - r.shape[1]), (0, 0)), constant_values=1.0)
              for r in rows]
    sheet = Image.fromarray(to_uint8(np.concatenate(padded)))
    draw, y = ImageDraw.Draw(sheet), 0
    for name, row in zip(MODELS, rows):
        draw.text((6, y + row.shape[0] // 2 - 6), name, fill=(0, 0, 0))
        y += row.shape[0]
    sheet.save(path)


def main(out: Path) -> None:
    run(out)
    zoo_sheet(out / "zoo.png")
    for title, table in (("Exports (size, seconds)", export_table), ("Parity (worst row)", parity_table),
                         ("Quality of the shipped weights", quality_table)):
        print(f"### {title}\n")
        print("\n".join(table(out)) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
