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


def check_output_file(path: Path | None, flag: str) -> Path | None:
    """Refuse an output file path that cannot be written, before any work is done.

    Checks what a user gets wrong: a directory given where a file is expected,
    a parent folder that does not exist (or is a file), a read-only place.
    ``flag`` names the option in the message. Example:
    ``check_output_file(Path("ro/p.json"), "--json")`` raises
    "--json ro/p.json: folder ro is read-only".
    """
    if path is None:
        return None
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise InvalidInputError(f"{flag} {path} is a directory; give a file name, e.g. {path / 'result.json'}")
    if not parent.exists():
        raise InvalidInputError(f"{flag} {path}: folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise InvalidInputError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):  # EROFS for root too
        raise InvalidInputError(f"{flag} {path}: folder {parent} is read-only")
    return path


def write_json(path: Path, obj, flag: str = "--json") -> None:
    """Write ``obj`` as indented JSON, atomically; a failure is one line, never a traceback."""
    import json

    try:
        write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
    except OSError as e:
        raise InvalidInputError(f"{flag} {path}: cannot write ({e.strerror or e})") from e


def tmp_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` that no loader or glob for artifacts matches."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """``remove`` for cleanup paths: never raises (unlink on a read-only file system fails
    with EROFS even when the file is not there, and would hide the real error)."""
    with contextlib.suppress(OSError):
        remove(path)


@contextlib.contextmanager
def atomic_path(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success.

    On any exception (Ctrl-C included) the temporary is removed. With
    ``replace=False`` an existing ``path`` is never overwritten (the rename
    fails for a non-empty directory, and is checked first for anything else).
    """
    path = Path(path)
    tmp = tmp_sibling(path)
    discard(tmp)
    try:
        yield tmp
        if not replace and path.exists():
            raise FileExistsError(path)
        os.replace(tmp, path) if replace else os.rename(tmp, path)
    finally:
        discard(tmp)


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
    """Serialise read-modify-write of shared files (manifest, models.config) in ``folder``.

    The lock is taken on the folder itself, so no lock file is left in the export (it
    would be served, and copied into the Docker image); unlinking a lock file after
    use would let two processes hold "the" lock at once.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
