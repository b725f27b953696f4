"""Prometheus metrics for `digestbot run`, served at /metrics on the HTTP endpoint.

One registry per daemon (not the process-global one), so tests and several daemons in one process never share
counters. Fed from each cycle's report, so the pipeline itself knows nothing about metrics.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.app import CycleReport


class Metrics:
    """Fetches, new items, deliveries by outcome, cycle duration, and when the last cycle finished."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fetches = Counter("digestbot_fetches", "Source refreshes by outcome.", ["source", "status"],
                               registry=self.registry)
        self.new_items = Counter("digestbot_new_items", "Items seen for the first time.", ["source"],
                                 registry=self.registry)
        self.deliveries = Counter("digestbot_deliveries", "Delivery attempts by outcome.",
                                  ["channel", "kind", "status"], registry=self.registry)
        self.cycle_seconds = Histogram("digestbot_cycle_duration_seconds", "Wall time of one cycle.",
                                       buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=self.registry)
        self.last_cycle = Gauge("digestbot_last_cycle_timestamp_seconds", "When the last cycle finished (Unix time).",
                                registry=self.registry)

    def observe(self, report: CycleReport, seconds: float) -> None:
        for refresh in report.refreshed:
            if refresh.status != "skipped":
                self.fetches.labels(refresh.source, refresh.status).inc()
            if refresh.new:
                self.new_items.labels(refresh.source).inc(refresh.new)
        for outcome in report.delivered:
            self.deliveries.labels(outcome.channel, outcome.kind, outcome.status).inc()
        self.cycle_seconds.observe(seconds)
        self.last_cycle.set(time.time())

    def render(self) -> bytes:
        return generate_latest(self.registry)
