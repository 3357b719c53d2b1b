"""What a longer batch timeout costs at low load (benchmarks/README.md, "Server CPU per request").

The unbatched local server and one batched server per BatchingParameters file, measured
with the bench's ``measure_level`` at 1, 2 and 4 clients, servers alternated, ROUNDS times;
prints and writes JSON rows (p50, requests/s, server CPU ms per request, mean batch size).

    .venv/bin/python benchmarks/dcgan_c8_server_cpu_low_concurrency.py OUT RESULT.json PARAMS.txt ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROUNDS, REQUESTS, TF_THREADS = 3, 200, 2


def dcgan_servers(out: Path, params: list[Path]):
    """(spec, signature name, one input, {name: LocalServer}): dcgan's unbatched server and one
    batched server per BatchingParameters file, not started (also used by the threads script)."""
    from genimg_export.bench.serving import LocalServer
    from genimg_export.zoo.loading import get_spec

    spec = get_spec("dcgan")
    sig = spec.signatures[0]
    base = out / "serving" / "dcgan"
    servers = {"unbatched": LocalServer(base, "dcgan", TF_THREADS)}
    servers.update({p.name: LocalServer(base, "dcgan", TF_THREADS, batching=p) for p in params})
    return spec, sig.name, spec.sample_inputs(1, 0, sig.name), servers


def main(out: Path, result: Path, params: list[Path]) -> None:
    from genimg_export.bench.serving import measure_level

    spec, signature, inputs, servers = dcgan_servers(out, params)
    rows = []
    try:
        for server in servers.values():
            server.start()
        for rnd in range(ROUNDS):
            for name, server in servers.items():
                for clients in (1, 2, 4):
                    level = measure_level(spec, signature, server.target, inputs, REQUESTS // clients, clients,
                                          probe=server.snapshot)
                    rows.append({"round": rnd, "server": name, **level})
                    print(json.dumps(rows[-1]), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    result.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
