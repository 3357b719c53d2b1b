"""Load and faults, on loopback only; every loop and call is bounded. All slow (``-m slow``).

- 8 gRPC clients for GENIMG_LOAD_SECONDS (default 60) against srgan: zero failures,
  p99 latency and the server's RSS growth recorded;
- a new version dropped into the base path under that load: zero failures, and
  every request sent after the first answer from the new version is answered by it;
- the server SIGKILLed and restarted under a client loop: patient clients (long
  deadline) all recover through their retries; impatient ones fail only with
  UNAVAILABLE or DEADLINE_EXCEEDED, within their deadline, never hang;
- the SavedModel export SIGKILLed at random points (seeded, >= 20 trials): the
  base path never holds a version that fails to load, the previous version keeps
  serving, and the hidden temporaries are never taken for versions.

The server runs in its own process (``genimg-export serve``) so that it can be
killed and its RSS read. Figures are printed and written as JSON under the
test's tmp dir (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from harness import child_env
from harness.serving import free_ports, start_server, write_affine

from genimg_serving.client import Client
from genimg_serving.errors import DeadlineExceededError, UnavailableError

pytestmark = pytest.mark.slow
LOAD_SECONDS = float(os.environ.get("GENIMG_LOAD_SECONDS", "60"))
CLIENTS = 8
CHILD_ENV = child_env()  # children import the harness too


# ---- a server in its own process ------------------------------------------------------


class ServerProcess:
    """``genimg-export serve`` for one model on a fixed loopback port (gRPC only)."""

    def __init__(self, name: str, base: Path, log: Path, poll_seconds: float = 0.2):
        self.name, self.base, self.log, self.poll = name, base, log, poll_seconds
        self.port, self.proc = free_ports()[0], None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> ServerProcess:
        cmd = [sys.executable, "-m", "genimg_export", "serve", "--model-name", self.name,
               "--model-base-path", str(self.base), "--port", str(self.port), "--rest-port", "0",
               "--poll-seconds", str(self.poll)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=CHILD_ENV)
        with Client(self.target, timeout=timeout, max_backoff=0.2) as client:  # sees it up at once
            client.wait_until_available(self.name, timeout=timeout)
        return self

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# ---- client loops -------------------------------------------------------------------------


@dataclass
class Call:
    client: int
    sent: float
    done: float
    version: int | None = None
    mean: float | None = None
    error: BaseException | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


class Clients:
    """``n`` threads, each with its own Client (channel), calling predict until stopped."""

    def __init__(self, target: str, model: str, x: np.ndarray, n: int, **client_kw):
        self.target, self.model, self.x, self.client_kw = target, model, x, client_kw
        self.calls: list[Call] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(n)]

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=self.client_kw.get("timeout", 30) + 30)
        assert not any(t.is_alive() for t in self.threads), "a client call hung past its deadline"

    def _loop(self, index: int) -> None:
        with Client(self.target, **self.client_kw) as client:
            alias = next(iter(client.signature(self.model).inputs))  # names come from metadata
            while not self.stop_event.is_set():
                sent = time.monotonic()
                try:
                    out, version = client.predict_versioned(self.model, {alias: self.x})
                    mean = float(np.mean(next(iter(out.values()))))
                    self.calls.append(Call(index, sent, time.monotonic(), version, mean))
                except Exception as e:  # recorded; the test decides which are allowed
                    self.calls.append(Call(index, sent, time.monotonic(), error=e))

    def ok(self) -> list[Call]:
        return [c for c in self.calls if c.error is None]

    def failed(self) -> list[Call]:
        return [c for c in self.calls if c.error is not None]

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
            time.sleep(0.05)


def percentile_ms(calls: list[Call], q: float) -> float:
    return round(float(np.percentile([c.seconds for c in calls], q)) * 1e3, 2)


def record(tmp_path: Path, name: str, figures: dict) -> None:
    path = tmp_path / f"reliability-{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}\n(written to {path})")


# ---- load ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srgan_base(tmp_path_factory) -> Path:
    """The zoo's srgan, untrained, exported as a SavedModel by the project's exporter."""
    pytest.importorskip("genimg_export.exporters", reason="the toolchain is needed to export srgan")
    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource
    from genimg_export.zoo import registry

    spec = registry.get("srgan")
    model = spec.build()
    out = tmp_path_factory.mktemp("srgan")
    with SavedModelSource(spec, model) as source:
        export_variant(spec, model, out, "saved_model", "fp32", source)
    return out / "serving" / "srgan"


def test_eight_clients_on_srgan_zero_failures_p99_and_rss_recorded(srgan_base, tmp_path):
    server = ServerProcess("srgan", srgan_base, tmp_path / "server.log").start()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    rss = []
    try:
        with Clients(server.target, "srgan", x, CLIENTS, timeout=30) as clients:
            clients.wait_for(lambda: len(clients.calls) >= 4 * CLIENTS, 120, "warm-up calls")
            warm, started = len(clients.calls), time.monotonic()
            rss.append(server.rss_mb())
            while time.monotonic() - started < LOAD_SECONDS:
                time.sleep(1.0)
                rss.append(server.rss_mb())
        calls = clients.calls[warm:]
    finally:
        server.stop()
    figures = {
        "clients": CLIENTS, "seconds": LOAD_SECONDS, "input": "1x16x16x3 -> 1x64x64x3",
        "requests": len(calls), "failed": len(clients.failed()),
        "requests_per_s": round(len(calls) / LOAD_SECONDS, 1),
        "p50_ms": percentile_ms(calls, 50), "p99_ms": percentile_ms(calls, 99),
        "max_ms": percentile_ms(calls, 100),
        "rss_start_mb": round(rss[0], 1), "rss_end_mb": round(rss[-1], 1), "rss_peak_mb": round(max(rss), 1),
        "rss_growth_mb": round(rss[-1] - rss[0], 1),
    }
    record(tmp_path, "load", figures)
    assert [repr(c.error) for c in clients.failed()] == []
    assert len(calls) >= CLIENTS
    assert figures["rss_growth_mb"] < 300


# ---- hot reload under load -------------------------------------------------------------------


def test_new_version_under_load_zero_failures_and_every_later_request_gets_it(tmp_path):
    base = tmp_path / "m"
    write_affine(base / "1", 1.0, 0.0)  # y = x: ones -> mean 1.0
    server = ServerProcess("m", base, tmp_path / "server.log", poll_seconds=0.2).start()
    phase = min(LOAD_SECONDS, 20.0) / 2
    x = np.ones((1, 16, 16, 3), np.float32)
    try:
        with Clients(server.target, "m", x, CLIENTS, timeout=30) as clients:
            time.sleep(phase)
            write_affine(base / "2", 1.0, 1.0)  # y = x + 1: mean 2.0; renamed into place
            written = time.monotonic()
            clients.wait_for(lambda: any(c.version == 2 for c in clients.calls), 120, "version 2 to answer")
            time.sleep(phase)
    finally:
        server.stop()
    calls = clients.calls
    switch = min(c.done for c in calls if c.version == 2)  # the first answer from version 2
    after = [c for c in calls if c.sent > switch]
    figures = {"clients": CLIENTS, "requests": len(calls), "failed": len(clients.failed()),
               "requests_after_switch": len(after), "switch_after_write_s": round(switch - written, 2),
               "p99_ms": percentile_ms(clients.ok(), 99)}
    record(tmp_path, "hot-reload", figures)
    assert [repr(c.error) for c in clients.failed()] == []
    assert {(c.version, c.mean) for c in calls} == {(1, 1.0), (2, 2.0)}  # each answer is its version's
    assert after and {c.version for c in after} == {2}


# ---- server killed and restarted --------------------------------------------------------------

PATIENT = dict(timeout=60.0, retries=100_000, backoff=0.05, max_backoff=0.5)
IMPATIENT = dict(timeout=2.0, retries=100_000, backoff=0.05, max_backoff=0.5)
KILLS = 3


def test_server_killed_and_restarted_clients_recover_or_fail_unavailable_in_time(tmp_path):
    base = tmp_path / "m"
    write_affine(base / "1", 2.0, 1.0)
    server = ServerProcess("m", base, tmp_path / "server.log").start()
    x = np.ones((1, 8, 8, 3), np.float32)
    outages, up = [], time.monotonic()
    try:
        with Clients(server.target, "m", x, 3, **PATIENT) as patient, \
                Clients(server.target, "m", x, 2, **IMPATIENT) as impatient:
            for _ in range(KILLS):
                outages.append(_kill_and_restart(server, patient, since=up))
                up = outages[-1][1]
            patient.wait_for(lambda: _all_answered(patient, up), 120, "every client after the last restart")
    finally:
        server.stop()
    _check_outages(tmp_path, outages, patient, impatient)


def _all_answered(clients: Clients, since: float, n: int = 5) -> bool:
    """Every client has had ``n`` answers since ``since``."""
    done = [c.client for c in clients.ok() if c.done > since]
    return all(done.count(i) >= n for i in range(len(clients.threads)))


def _kill_and_restart(server: ServerProcess, clients: Clients, since: float) -> tuple[float, float]:
    """Once every client is being answered, SIGKILL the server and start it again on the same
    port; returns (killed at, available again at)."""
    clients.wait_for(lambda: _all_answered(clients, since), 120, "every client to be answered")
    killed = time.monotonic()
    server.kill()
    time.sleep(1.0)
    server.start()
    return killed, time.monotonic()


def _check_outages(tmp_path, outages, patient: Clients, impatient: Clients) -> None:
    in_flight = [c for c in patient.ok() if any(c.sent < killed < c.done for killed, _ in outages)]
    kinds = {type(c.error).__name__ for c in impatient.failed()}
    allowed = (UnavailableError, DeadlineExceededError)
    # per outage: when the last client got its first answer, counted from the server being back
    recover = [max(min(c.done for c in patient.ok() if c.client == i and c.done > up)
                   for i in range(len(patient.threads))) - up for _, up in outages]
    figures = {
        "kills": len(outages), "outage_s": [round(up - k, 1) for k, up in outages],
        "patient_calls": len(patient.calls), "patient_failed": len(patient.failed()),
        "patient_calls_in_flight_at_a_kill": len(in_flight),
        "every_client_answered_after_restart_s": [round(r, 2) for r in recover],
        "patient_max_call_s": round(max(c.seconds for c in patient.calls), 2),
        "impatient_calls": len(impatient.calls), "impatient_failed": len(impatient.failed()),
        "impatient_failure_kinds": sorted(kinds),
        "impatient_max_call_s": round(max(c.seconds for c in impatient.calls), 2),
    }
    record(tmp_path, "kill-restart", figures)
    assert [repr(c.error) for c in patient.failed()] == []  # retries carried every call through
    assert in_flight  # calls cut off by a kill were retried to success
    assert figures["patient_max_call_s"] < PATIENT["timeout"] + 5
    assert all(isinstance(c.error, allowed) for c in impatient.failed()), kinds
    assert impatient.failed(), "the outages were shorter than the impatient deadline: nothing was checked"
    assert figures["impatient_max_call_s"] < IMPATIENT["timeout"] + 2  # bounded: no hang


# ---- export killed at random points -------------------------------------------------------------

TRIALS = 20
SEED = 8
CHILD = textwrap.dedent("""
    from harness.tiny import tiny_spec
    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource

    spec, model = tiny_spec()
    print("READY", flush=True)
    for _ in range(20):  # exports until killed (bounded)
        with SavedModelSource(spec, model) as source:
            export_variant(spec, model, {out!r}, "saved_model", "fp32", source)
        print("DONE", flush=True)
""")
HIDDEN_TMP = re.compile(r"^\.\d+\.tmp-\d+$")  # genimg_export.fs.tmp_sibling of a version


def test_export_sigkilled_at_random_points_never_leaves_a_broken_version(tmp_path):
    pytest.importorskip("genimg_export.exporters", reason="the toolchain's exporter is what is killed")
    from genimg_serving.configs import single_model

    out, rng = tmp_path / "out", random.Random(SEED)
    base = out / "serving" / "tiny"
    _export_in_process(out)  # version 1, before any kill
    server = start_server(single_model("tiny", base), poll_seconds=0.1, rest_port=None)
    seen = _Seen(verified={1})
    try:
        export_seconds = _child_export(out, tmp_path, _after_one_export)  # the time scale
        _check_after_kill(out, base, server, seen)
        for trial in range(TRIALS):
            mode, wait = _kill_plan(rng, base, export_seconds, mid_write=trial % 2 == 1)
            seen.kills.append((mode, round(_child_export(out, tmp_path, wait), 3)))
            _check_after_kill(out, base, server, seen)
    finally:
        server.stop()
    _record_kills(tmp_path, seen, export_seconds)


@dataclass
class _Seen:
    verified: set
    kills: list = field(default_factory=list)  # (mode, seconds from the child's start of work to its kill)
    half_written: set = field(default_factory=set)  # hidden temporaries that kills left behind


def _after_one_export(child) -> None:
    assert _line(child, 180) == "DONE", "the first export did not finish"


def _kill_plan(rng: random.Random, base: Path, export_seconds: float, mid_write: bool):
    """A kill at a random moment of the export loop, or at a random moment while a version is
    being written (from its hidden temporary's appearance)."""
    if not mid_write:
        delay = rng.uniform(0.0, 1.5 * export_seconds)
        return "any time", lambda child: time.sleep(delay)
    delay = rng.uniform(0.0, 0.04)  # writing a tiny version takes a few tens of ms

    def while_writing(child):
        name = re.compile(rf"^\.\d+\.tmp-{child.pid}$")  # this child's, not a dead one's leftover
        deadline = time.monotonic() + 120
        while not any(name.match(p.name) for p in base.iterdir()):
            assert time.monotonic() < deadline, "the child never started writing a version"
            time.sleep(0.001)
        time.sleep(delay)

    return "mid-write", while_writing


def _export_in_process(out: Path) -> None:
    from harness.tiny import tiny_spec

    from genimg_export.exporters import export_variant
    from genimg_export.exporters.saved_model import SavedModelSource

    spec, model = tiny_spec()
    with SavedModelSource(spec, model) as source:
        export_variant(spec, model, out, "saved_model", "fp32", source)


def _child_export(out: Path, tmp_path: Path, wait) -> float:
    """Start an exporting child; SIGKILL it when ``wait(child)`` returns. Returns the seconds
    from the child being ready (imports done) to the kill."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**CHILD_ENV, "TMPDIR": str(tmp_path / "tmp")}  # SavedModelSource's scratch stays in tmp_path
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(out=str(out))],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert _line(child, 180) == "READY", "the exporting child did not start"
        ready = time.monotonic()
        wait(child)
        return time.monotonic() - ready
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


def _line(child: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    return child.stdout.readline().strip() if ready else ""


def _check_after_kill(out: Path, base: Path, server, seen: _Seen) -> None:
    from genimg_serving.server.servable import Servable

    entries = sorted(p.name for p in base.iterdir())
    versions = sorted(int(n) for n in entries if n.isdigit())
    others = [n for n in entries if not n.isdigit()]
    assert all(HIDDEN_TMP.match(n) for n in others), others  # only hidden temporaries besides versions
    assert len(others) <= 1, others  # at most the killed child's: each export sweeps dead ones first
    seen.half_written.update(others)
    for v in versions:
        if v not in seen.verified:  # every version directory loads, warmup included
            Servable.load("tiny", v, base / str(v))
            seen.verified.add(v)
    _check_served(server, max(versions))
    _check_records(out, versions)


def _check_served(server, latest: int) -> None:
    manager = server.manager
    deadline = time.monotonic() + 60
    while manager.served().get("tiny") != [latest]:
        assert time.monotonic() < deadline, f"server stuck at {manager.served()}, expected [{latest}]"
        time.sleep(0.05)
    states = manager.states("tiny")
    assert all(s.error_code == 0 for s in states.values()), states  # no load ever failed
    with Client(server.target, timeout=30) as client:
        out, version = client.predict_versioned("tiny", {"x": np.zeros((1, 8, 8, 3), np.float32)})
    assert version == latest and out["y"].shape == (1, 8, 8, 3)


def _check_records(out: Path, versions: list[int]) -> None:
    """models.config still parses; the manifest names no version that is not on disk."""
    from genimg_export.artifacts import manifest
    from genimg_serving import config_files
    from genimg_serving.configs import MODELS_CONFIG

    config_files.parse(out / "serving" / MODELS_CONFIG)
    recorded = [int(Path(e.path).name) for e in manifest.load(out) if e.format == "saved_model"]
    assert set(recorded) <= set(versions), (recorded, versions)


def _record_kills(tmp_path: Path, seen: _Seen, export_seconds: float) -> None:
    modes = [mode for mode, _ in seen.kills]
    figures = {"trials": len(seen.kills), "seed": SEED, "one_export_s": round(export_seconds, 2),
               "kills_any_time": modes.count("any time"), "kills_mid_write": modes.count("mid-write"),
               "kills_leaving_a_half_written_version": len(seen.half_written), "kills": seen.kills,
               "versions_completed_and_loaded": len(seen.verified), "versions_that_failed_to_load": 0}
    record(tmp_path, "export-sigkill", figures)
    assert len(seen.kills) >= 20 and seen.half_written, figures  # some kills did land mid-write
