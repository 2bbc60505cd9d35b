"""One logger, one metrics sink and one tracer for the whole service (Powertools).

Logs are JSON with constant messages and the keys executionId, waveNumber, jobId and eventId;
metrics go out as CloudWatch EMF under one namespace. Handlers decorate their entry points with
these objects; domain code only appends keys and counts through `metrics_count`, which is safe
from the sweep's worker threads.
"""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "drs-reconciler"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="DrsReconciler", service=SERVICE)
tracer = Tracer(service=SERVICE)

_metrics_lock = threading.Lock()


def metrics_count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """Add a metric value; safe from the sweep's worker threads (Powertools' store is not)."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit=unit, value=value)


__all__ = ["MetricUnit", "logger", "metrics", "metrics_count", "tracer"]
