"""How much the CLI says: quiet by default, ``--verbose`` for everything, ``--quiet`` for scripts.

TensorFlow, XLA and onnxruntime write from C++ straight to file descriptor 2 (absl
lines such as ``E0000 ... failed call to cuInit``, oneDNN notices, onnxruntime's
``Duplicate initializer`` warnings, ``OP_REQUIRES failed ... ABORTED`` from a
passing run), some before absl reads ``TF_CPP_MIN_LOG_LEVEL``. No setting silences
all of them, so by default fd 2 goes through a pipe and a thread that drops the
lines in those formats; Python's ``sys.stderr`` (our messages, rich progress,
tracebacks) keeps the real terminal. ``--verbose`` installs nothing.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
import warnings

NORMAL, QUIET, VERBOSE = "normal", "quiet", "verbose"
_level = NORMAL

# Lines written by the runtimes' C++ loggers, never by genimg-export.
NOISE = re.compile(
    r"^\s*("
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"  # absl: E0000 00:00:1796288829.277611 1 file.cc:52]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]"  # TF's own logger
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[[IWE]:onnxruntime:"  # onnxruntime's
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions:|This TensorFlow binary is optimized"
    r")"
)
LIBRARIES = ("tensorflow", "absl", "keras", "tf2onnx", "onnxruntime", "onnx", "h5py", "jax")


def level() -> str:
    return _level


def quiet() -> bool:
    """--quiet: only errors and the final result (no progress, no per-step lines)."""
    return _level == QUIET


def configure(verbose: bool, quiet_: bool) -> None:
    """Set the level for this process; call once, before TensorFlow is imported."""
    global _level
    _level = VERBOSE if verbose else QUIET if quiet_ else NORMAL
    if _level == VERBOSE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in LIBRARIES:  # their deprecation and user warnings are not the user's to fix
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
    _filter_fd2()


_installed = False


def _filter_fd2() -> None:
    """Route fd 2 through a thread that drops NOISE lines (only for a real process
    stderr: under CliRunner or pytest's capture there is no fd to redirect)."""
    global _installed
    try:
        if _installed or sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    _installed = True
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1, errors="backslashreplace")
    thread = threading.Thread(target=_pump, args=(read_end, terminal), daemon=True, name="stderr-filter")
    thread.start()

    def restore() -> None:  # at exit: give fd 2 back, let the thread drain what was written
        try:
            sys.stderr.flush()
            os.dup2(terminal, 2)
        except OSError:
            pass
        thread.join(timeout=1.0)

    atexit.register(restore)


def _pump(read_end: int, terminal: int) -> None:
    """Copy whole lines as soon as they arrive (no read-ahead buffering: a crash's last
    words must show at once); ends when every writer, children included, closed fd 2."""
    pending = b""
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        _write(terminal, [line + b"\n" for line in lines])
    _write(terminal, [pending] if pending else [])
    os.close(read_end)


def _write(terminal: int, lines: list[bytes]) -> None:
    kept = b"".join(line for line in lines if not NOISE.match(line.decode("utf-8", "replace")))
    if kept:
        try:
            os.write(terminal, kept)
        except OSError:
            pass


def spinner(text: str):
    """A rich spinner on stderr (nothing under --quiet or when stderr is not a terminal);
    enter it to get ``update(line)``. Example::

        with spinner("parity srgan") as update:
            run_parity(..., progress=update)
    """
    import contextlib

    from rich.console import Console

    @contextlib.contextmanager
    def run():
        console = Console(stderr=True, quiet=quiet())
        with console.status(text) as status:
            yield lambda line: status.update(f"{text}: {line}")

    return run()
