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
        """The Prometheus page, written by ``prometheus_client`` from a registry of our own."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return generate_latest(registry).decode("utf-8")

    def families(self):
        """The metric families, named as TF Serving names them."""
        from prometheus_client.core import Metric

        # "unknown" (untyped) rather than "counter": prometheus_client would rename a
        # counter to *_total, and dashboards built on TF Serving query request_count.
        count = Metric(_COUNT, "Number of requests by model, API and status.", "unknown")
        latency = Metric(_LATENCY, "Request latency in microseconds.", "summary")
        with self._lock:
            for (model, api, status), n in sorted(self._count.items()):
                count.add_sample(_COUNT, {"model_name": model, "api": api, "status": status}, n)
            for (model, api), total in sorted(self._latency_us.items()):
                labels = {"model_name": model, "API": api}
                latency.add_sample(f"{_LATENCY}_sum", labels, round(total))
                latency.add_sample(f"{_LATENCY}_count", labels, self._latency_n[(model, api)])
        return [count, latency, *self._batching_families()]

    def _batching_families(self):
        from prometheus_client.core import Metric

        if self.batcher is None:
            return []
        counts = self.batcher.processed()
        families = []
        for i, name in enumerate(("batches", "rows", "padding_rows")):
            family = Metric(f":genimg_serving:batching:{name}", f"Server-side batching: {name}.", "unknown")
            for model, c in sorted(counts.items()):
                family.add_sample(family.name, {"model_name": model}, c[i])
            families.append(family)
        return families


_COUNT = ":tensorflow:serving:request_count"
_LATENCY = ":tensorflow:serving:request_latency"


class _Collector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        return self.metrics.families()
