"""A user's own images as training data for the zoo, streamed with ``tf.data``.

``scan`` checks a folder once, reading only image headers (so a folder larger
than memory works) and says in one line what is wrong with it; ``batches``
streams it: read, decode, random crop, flip, batch, prefetch.

Layouts, per model:
- srgan, style: a folder of RGB images (searched recursively), random crops of
  the model's training size (96x96); srgan makes its low-resolution inputs
  itself (``data.downscale``);
- pix2pix: ``input/`` and ``target/`` with matching file names (the same crop
  of both), or a flat folder of clean images degraded by ``data.degrade``;
- dcgan, vae: a flat folder, each image made grayscale and resized to 32x32;
  cgan: one sub-folder per class (sorted names are labels 0, 1, ...);
- any model but pix2pix pairs: ``.tfrecord`` shards of ``tf.train.Example``
  records with an encoded image in the bytes feature ``image`` (and an int64
  ``label`` for cgan).

Order and augmentation are pure functions of (seed, element index): each epoch
is a stateless permutation of the files (``index_shuffle``), each crop and flip
is drawn with a stateless seed (seed, index). A run resumed at step k streams
exactly what an uninterrupted run streams from step k, with no iterator state
to save.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from genimg_export.errors import InvalidInputError, NotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
RECORD_SUFFIXES = (".tfrecord", ".tfrecords")
DIGIT_SIDE = 32
MAX_CLASSES = 10  # cgan's label embedding
SHUFFLE_RECORDS = 1024  # shuffle buffer for TFRecord streams (no random access there)


@dataclass(frozen=True)
class Layout:
    """What a model trains on: RGB random crops of ``crop`` pixels, or (crop None)
    whole images made 32x32 grayscale."""

    crop: int | None
    flip: bool
    classes: bool = False
    pairs: bool = False


def layout(model: str) -> Layout:
    from genimg_export.zoo import pix2pix, srgan, style

    table = {
        "srgan": Layout(srgan.PATCH * srgan.SCALE, flip=True),
        "pix2pix": Layout(pix2pix.CROP, flip=True, pairs=True),
        "style": Layout(style.CROP, flip=True),
        "dcgan": Layout(None, flip=False),
        "vae": Layout(None, flip=False),
        "cgan": Layout(None, flip=False, classes=True),
    }
    if model not in table:
        raise InvalidInputError(f"model '{model}' cannot be trained on your data (zoo models: {', '.join(table)})")
    return table[model]


@dataclass(frozen=True)
class UserData:
    """A scanned data folder. ``files`` are images (or TFRecord shards), sorted;
    ``targets`` pair them for pix2pix; ``labels`` index ``classes`` for cgan."""

    root: Path
    files: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    labels: tuple[int, ...] | None = None
    classes: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    records: bool = False
    whole: str | None = None  # a subset's: the digest of the folder it came from

    @property
    def digest(self) -> str:
        """sha256 of the sorted relative file list of the folder (what the card records)."""
        if self.whole:
            return self.whole
        names = sorted(Path(f).relative_to(self.root).as_posix() for f in (*self.files, *(self.targets or ())))
        return hashlib.sha256("\n".join(names).encode()).hexdigest()

    def describe(self) -> str:
        kind = "TFRecord shards" if self.records else "images"
        extra = f" in {len(self.classes)} classes ({', '.join(self.classes)})" if self.classes else ""
        extra += " as input/target pairs" if self.targets else ""
        return f"{len(self.files)} {kind}{extra} from {self.root}"

    def subset(self, keep) -> UserData:
        pick = [i for i in range(len(self.files)) if keep(i)]
        sub = lambda xs: None if xs is None else tuple(xs[i] for i in pick)  # noqa: E731
        return UserData(
            self.root,
            sub(self.files),
            self.skipped,
            sub(self.labels),
            self.classes,
            sub(self.targets),
            self.records,
            self.digest,
        )


def scan(model: str, root: Path) -> UserData:
    """Check ``root`` for ``model``'s layout; one clear InvalidInputError if it does not fit."""
    lay, root = layout(model), Path(root)
    if not root.exists():
        raise NotFoundError(f"no such data folder: {root}")
    shards = (
        [root] if root.suffix in RECORD_SUFFIXES else sorted(p for p in root.rglob("*") if p.suffix in RECORD_SUFFIXES)
    )
    if shards:
        return _scan_records(model, root, shards, lay)
    if not root.is_dir():
        raise InvalidInputError(f"--data {root} is a file; expected a folder of images or .tfrecord shards")
    if lay.classes:
        return _scan_classes(model, root, lay)
    if lay.pairs and (root / "input").is_dir() and (root / "target").is_dir():
        return _scan_pairs(model, root, lay)
    good, bad = _readable(_images_in(root), lay.crop, model)
    if not good:
        raise InvalidInputError(_nothing_usable(root, bad))
    return UserData(root, tuple(good), tuple(bad))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _nothing_usable(root: Path, bad: list[str]) -> str:
    if bad:
        return f"no readable images in {root}: all {len(bad)} image files failed to decode (e.g. {bad[0]})"
    return f"{root} has no images (expected {', '.join(IMAGE_SUFFIXES)} files or .tfrecord shards)"


def _size(path) -> tuple[int, int] | None:
    """(width, height) from the header, or None for a file that is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()  # checks structure (PNG CRCs) without decoding the pixels
            return img.size
    except Exception:  # PIL raises many types for a broken file; it is skipped and counted
        return None


def _readable(paths: list[Path], crop: int | None, model: str) -> tuple[list[str], list[str]]:
    """(good, unreadable); an image smaller than the crop is an error."""
    good, bad = [], []
    for path in paths:
        size = _size(path)
        if size is None:
            bad.append(str(path))
            continue
        if crop is not None and min(size) < crop:
            raise InvalidInputError(
                f"{path} is {size[0]}x{size[1]}, smaller than the {crop}x{crop} crops {model} trains on;"
                f" remove it or upscale it"
            )
        good.append(str(path))
    return good, bad


def _scan_classes(model: str, root: Path, lay: Layout) -> UserData:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InvalidInputError(
            f"{model} needs one sub-folder per class ({root}/0/*.png, {root}/1/*.png, ...); {root} has none"
        )
    if len(folders) > MAX_CLASSES:
        raise InvalidInputError(
            f"{model} learns at most {MAX_CLASSES} classes; {root} has {len(folders)} class folders"
        )
    files, labels, skipped = [], [], []
    for label, folder in enumerate(folders):
        good, bad = _readable(_images_in(folder), lay.crop, model)
        if not good:
            raise InvalidInputError(f"class folder {folder} has no readable images")
        files += good
        labels += [label] * len(good)
        skipped += bad
    return UserData(root, tuple(files), tuple(skipped), tuple(labels), tuple(f.name for f in folders))


def _scan_pairs(model: str, root: Path, lay: Layout) -> UserData:
    inputs = {p.relative_to(root / "input").as_posix(): p for p in _images_in(root / "input")}
    targets = {p.relative_to(root / "target").as_posix(): p for p in _images_in(root / "target")}
    lonely = sorted(set(inputs) ^ set(targets))
    if lonely:
        side, other = ("input", "target") if lonely[0] in inputs else ("target", "input")
        raise InvalidInputError(
            f"{len(lonely)} unpaired pix2pix file(s): {side}/{lonely[0]} has no match in {other}/"
            f" (a pair is the same file name in input/ and target/)"
        )
    files, paired, skipped = [], [], []
    for name in sorted(inputs):
        good, bad = _readable([inputs[name], targets[name]], lay.crop, model)
        if bad:
            skipped += bad
            continue
        a, b = _size(good[0]), _size(good[1])
        if a != b:
            raise InvalidInputError(
                f"{good[0]} is {a[0]}x{a[1]} but {good[1]} is {b[0]}x{b[1]}; a pair must be the same size"
            )
        files.append(good[0])
        paired.append(good[1])
    if not files:
        raise InvalidInputError(_nothing_usable(root, skipped))
    return UserData(root, tuple(files), tuple(skipped), targets=tuple(paired))


def _scan_records(model: str, root: Path, shards: list[Path], lay: Layout) -> UserData:
    import tensorflow as tf

    if lay.pairs and (root / "input").is_dir():
        raise InvalidInputError("pix2pix pairs come as input/ + target/ image folders, not TFRecord shards")
    for shard in shards:
        try:
            first = next(iter(tf.data.TFRecordDataset(str(shard)).take(1)), None)
        except tf.errors.OpError as e:
            raise InvalidInputError(f"{shard} is not a readable TFRecord file: {e.message.splitlines()[0]}") from e
        if first is None:
            raise InvalidInputError(f"{shard} holds no records")
        features = tf.train.Example.FromString(first.numpy()).features.feature
        needed = ("image", "label") if lay.classes else ("image",)
        missing = [k for k in needed if k not in features]
        if missing:
            raise InvalidInputError(
                f"{shard}: records have no '{missing[0]}' feature (expected tf.train.Example with"
                f" bytes 'image' (an encoded PNG/JPEG){' and int64 label' if lay.classes else ''})"
            )
    base = root if root.is_dir() else root.parent
    return UserData(base, tuple(map(str, shards)), records=True)
