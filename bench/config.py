"""What one benchmark run does: sizes and durations, from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class RunConfig:
    rounds: int = 3
    events: int = 10_000  # cap on the events of the fan-out backlog (x endpoints deliveries)
    ingest_seconds: float = 5.0  # and on its duration
    drain_ingest_seconds: float = 8.0  # distributed backlogs: PostgreSQL ingest is slower
    connections: int = 64  # load generator connections (wrk -c)
    ceiling_requests: int = 20_000  # POSTs of the delivery ceiling client
    naive_tasks: int = 3_000  # backlog of the naive Celery peer, instant receiver
    naive_tasks_slow: int = 400  # ... 50 ms receiver (~40/s: 10 s)
    latency_rate: float = 500.0  # events/s of the end-to-end latency scenario
    latency_seconds: float = 10.0
    fanout: int = 10  # endpoints of the fan-out scenario
    slow_delay: float = 0.05  # the realistic receiver's answer time
    sample: int = 50  # one signature in this many is verified by the receiver
    timeout: float = 300.0  # longest any single wait may take before the scenario fails
    python_loadgen: bool = False  # use the aiohttp load generator even if wrk is installed
    everyday_rates: tuple[float, ...] = (100.0, 500.0)  # open-loop events/s, one phase each
    everyday_seconds: float = 20.0  # each measured phase
    everyday_warmup: float = 5.0  # at the first rate, before the measured phases
    idle_settle: float = 5.0  # after start-up, before the idle measurement
    idle_seconds: float = 20.0

    @classmethod
    def quick(cls, rounds: int = 1) -> RunConfig:
        return cls(
            rounds=rounds,
            events=2_000,
            ingest_seconds=2.0,
            drain_ingest_seconds=3.0,
            ceiling_requests=5_000,
            naive_tasks=600,
            naive_tasks_slow=80,
            latency_seconds=3.0,
            everyday_seconds=4.0,
            everyday_warmup=1.0,
            idle_settle=2.0,
            idle_seconds=3.0,
            timeout=120.0,
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
