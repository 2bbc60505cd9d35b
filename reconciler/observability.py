"""One logger, one metrics sink and one tracer for the whole service (Powertools).

Logs are JSON with constant messages and the keys executionId, waveNumber, jobId and eventId;
metrics go out as CloudWatch EMF under one namespace. Handlers decorate their entry points with
these objects; domain code only appends keys and adds metrics.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "drs-reconciler"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="DrsReconciler", service=SERVICE)
tracer = Tracer(service=SERVICE)

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
