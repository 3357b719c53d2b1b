"""Request counters and latencies, exposed in Prometheus text format.

Metric names follow TF Serving's (``:tensorflow:serving:request_count``,
``:tensorflow:serving:request_latency``) so dashboards built for the real
server read the local one too. With batching on, the local server adds its own
``:genimg_serving:batching:batches`` / ``rows`` / ``padding_rows`` counters
(rows / batches is the mean batch size, the figure to watch while tuning).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from genimg_serving.errors import ServingError


class Metrics:
    def __init__(self, batcher=None):
        self.batcher = batcher  # a batching.Batcher whose counts are exported, or None
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency_us: dict[tuple[str, str], float] = defaultdict(float)
        self._latency_n: dict[tuple[str, str], int] = defaultdict(int)

    @contextmanager
    def track(self, model: str, api: str):
        """Count one request to ``model``/``api`` and time it."""
        started = time.perf_counter()
        status = "OK"
        try:
            yield
        except ServingError as e:
            status = e.code.name
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            micros = (time.perf_counter() - started) * 1e6
            with self._lock:
                self._count[(model, api, status)] += 1
                self._latency_us[(model, api)] += micros
                self._latency_n[(model, api)] += 1

    def prometheus_text(self) -> str:
        with self._lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            for (model, api, status), n in sorted(self._count.items()):
                lines.append(
                    f':tensorflow:serving:request_count{{model_name="{_esc(model)}",'
                    f'api="{api}",status="{status}"}} {n}'
                )
            lines.append("# TYPE :tensorflow:serving:request_latency summary")
            for (model, api), total in sorted(self._latency_us.items()):
                labels = f'model_name="{_esc(model)}",API="{api}"'
                lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {total:.0f}")
                lines.append(
                    f":tensorflow:serving:request_latency_count{{{labels}}}"
                    f" {self._latency_n[(model, api)]}"
                )
        return "\n".join(lines + self._batching_lines()) + "\n"

    def _batching_lines(self) -> list[str]:
        if self.batcher is None:
            return []
        counts = self.batcher.processed()
        lines = []
        for i, name in enumerate(("batches", "rows", "padding_rows")):
            lines.append(f"# TYPE :genimg_serving:batching:{name} counter")
            lines += [f':genimg_serving:batching:{name}{{model_name="{_esc(model)}"}} {c[i]}'
                      for model, c in sorted(counts.items())]
        return lines


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
