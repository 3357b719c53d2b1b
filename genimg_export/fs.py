"""The filesystem, at the bottom of the package: output folders, atomic writes,
hashes and locks.

Every artifact is written under a hidden temporary name next to its final
place (``.NAME.tmp-PID``) and renamed into place when complete, so a user or
TF Serving never sees half a file. A process killed with SIGKILL leaves only
such a hidden name, which the next export into the same folder removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from genimg_export.errors import InvalidInputError

_TMP = re.compile(r"^\..+\.tmp-(\d+)$")


def check_out_dir(out: Path) -> Path:
    """Create ``out`` or say clearly why it cannot be written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(f"cannot create output directory {out}: {e.strerror}") from e
    if not os.access(out, os.W_OK):
        raise InvalidInputError(f"output directory {out} is not writable")
    return out


def tmp_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` that no loader or glob for artifacts matches."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success.

    On any exception (Ctrl-C included) the temporary is removed. With
    ``replace=False`` an existing ``path`` is never overwritten (the rename
    fails for a non-empty directory, and is checked first for anything else).
    """
    path = Path(path)
    tmp = tmp_sibling(path)
    remove(tmp)
    try:
        yield tmp
        if not replace and path.exists():
            raise FileExistsError(path)
        os.replace(tmp, path) if replace else os.rename(tmp, path)
    finally:
        remove(tmp)


def sweep_stale(folder: Path) -> None:
    """Remove temporaries left in ``folder`` by export processes that died."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _TMP.match(entry.name)
        if match and not _alive(int(match.group(1))):
            remove(entry)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_path(path: Path) -> str:
    """sha256 of a file; for a directory, of every file's relative path and hash, sorted."""
    path = Path(path)
    if path.is_file():
        return _sha256_file(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path).as_posix()}\0{_sha256_file(f)}\n".encode())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of shared files (manifest, models.config) in ``folder``."""
    with open(Path(folder) / ".genimg-export.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
