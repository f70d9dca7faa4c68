"""`GET /metrics`: requests, errors by kind, latency and audio classified, and the process's
memory, CPU time and open files (`process_*`, read from /proc on Linux), in Prometheus text.

Each app has its own registry (prometheus_client's), so two servers in one process (as in the
tests) never count into each other.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

#: Latency buckets in seconds: a 5 s clip takes tens of milliseconds, a long file tens of seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class ServerMetrics:
    """The server's Prometheus metrics (requests, errors, latency, audio, files, jobs) in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("audiocnn_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.errors = Counter("audiocnn_errors", "Requests refused or failed, by kind of problem", ["kind"],
                              registry=self.registry)
        self.latency = Histogram("audiocnn_request_seconds", "Time to answer a request, by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter("audiocnn_audio_seconds", "Seconds of audio classified",
                                     registry=self.registry)
        self.files = Counter("audiocnn_files", "Files classified or refused, by outcome", ["outcome"],
                             registry=self.registry)
        self.busy = Gauge("audiocnn_jobs_admitted", "Jobs running or waiting for a worker", registry=self.registry)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total, ...

    def text(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
