"""The delivery engine: claim due deliveries, send them concurrently, record results.

- The dispatcher claims batches with a lease (never more than ``delivery_concurrency`` in
  flight, never more than an endpoint's cap to one endpoint: delivery/concurrency.py) in
  fair order across tenants (delivery/fairness.py), and sleeps until woken: by a publish,
  by a retry falling due, by a saturated endpoint finishing an attempt, or by the poll
  timer (which also picks up leases left behind by a dead process). The claim hands back
  what the endpoint's health or FIFO turn holds back; the dispatcher hands back what the
  endpoint's rate limit holds back (delivery/policy.py, docs/DELIVERY.md).
- Each claimed delivery is one asyncio task running :func:`perform_attempt`.
- A single writer records finished attempts in batches, one transaction per batch.
A crash at any point leaves rows that become due again when their lease expires. The same
engine runs in the API process (embedded) and in each Celery worker process.

:func:`deliver_due` is the same claim → attempt → record cycle without the concurrency
machinery: everything due now, once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import math
import os
import random
import socket
import uuid
from collections.abc import Sequence

import aiohttp
import structlog
from sqlalchemy.exc import DBAPIError

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database, transaction_conflict, utcnow
from webhookd.delivery.attempt import perform_attempt
from webhookd.delivery.concurrency import EndpointCaps
from webhookd.delivery.health import Change
from webhookd.delivery.job import Job, Outcome
from webhookd.delivery.lifecycle import Transition
from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.store import Claim, DeliveryStore, PutBack, Recorded
from webhookd.logging import log_failure
from webhookd.models import DeliveryStatus
from webhookd.ratelimit import EndpointLimiter

log = structlog.get_logger("webhookd.delivery")

WRITE_BATCH = 500
# A claim woken by new work (a publish, a retry's timer) runs at least this long after the
# previous claim began. At everyday load (hundreds of events/s, each woken on its own) that
# claims every few events in one transaction instead of one each, and fewer claims find
# nothing; one event at a time (100/s and less) is claimed at once, and a backlog is claimed
# without pause (the loop goes on while a claim fills up).
CLAIM_SPACING = 0.005
WRITE_LINGER = 0.005  # seconds the writer waits for more outcomes of attempts still out
# A wake-up for work due at a given time comes this much later: timers may fire up to a
# millisecond early (uvloop's resolution), and a claim that runs before the rows are due
# finds nothing and leaves them to the poll.
TIMER_SLACK = 0.002
MAX_CONFLICT_RETRIES = 3  # an outcome batch PostgreSQL aborted as a deadlock victim runs again


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DeliveryStore,
        client: aiohttp.ClientSession,
        policy: EndpointPolicy,
        limiter: EndpointLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.client = client
        self.policy = policy
        self.limiter = limiter
        self.caps = EndpointCaps(slots=settings.delivery_concurrency, max_cap=policy.max_in_flight)
        self.owner = worker_id()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._results: asyncio.Queue[Outcome] = asyncio.Queue()
        self._in_flight = 0
        self._by_endpoint: collections.Counter[int] = collections.Counter()
        self._held_back: set[int] = set()  # endpoints whose due rows the last claim left
        # False while a claim has found no due work beyond the saturated endpoints and
        # nothing new may have come since (DeliveryStore.claim_due). With a floor, only
        # publishes came since: their rows have queue keys from there on, so the search
        # past the saturated endpoints starts there instead of stepping through their
        # backlogs from the head of the queue.
        self._search_past_saturated = True
        self._search_floor: int | None = None
        # Held-back endpoints that had room again since the last search that saw all due
        # work: their rows may sit behind a saturated endpoint's backlog.
        self._roomed: set[int] = set()
        self._wakes = 0  # wake-ups so far: one during a claim keeps its search going
        self._claimed_all = False  # the last claim leased as many rows as it asked for
        self._new_work = True  # woken (a publish, a retry, the poll) since the last claim
        self._next_probe_search = 0.0  # loop time: look for cooled-down circuits from then
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        # Deliveries whose attempt is out (or not yet recorded) -> loop time their lease was
        # last set: the renewer extends those older than a third of a lease.
        self._leases: dict[int, float] = {}
        self._claim_started = -math.inf  # loop time the last claim or reservation began
        self._reserved_at = 0.0  # loop time of the last reservation (its leases run from there)
        self._claiming = False  # a claim transaction is under way
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="webhookd-dispatcher"),
            asyncio.create_task(self._write_loop(), name="webhookd-writer"),
            asyncio.create_task(self._renew_loop(), name="webhookd-renewer"),
        ]
        log.info("engine.started", owner=self.owner, concurrency=self.settings.delivery_concurrency)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let attempts in flight finish for ``grace`` seconds, record them,
        and hand back whatever is left so that the next process starts on it at once."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        if self._attempt_tasks:
            _, pending = await asyncio.wait(self._attempt_tasks, timeout=grace)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._results.join(), timeout=grace)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        try:
            async with self.db.write_connection() as conn:
                released = await self.store.release_leases(conn, owner=self.owner, now=utcnow())
        except Exception:
            log.exception("engine.release_failed", owner=self.owner)
        else:
            log.info("engine.stopped", owner=self.owner, released=released)

    def wake(self, from_key: int | None = None) -> None:
        """New work may be due (a publish, a retry, a message): claim now, and look past
        endpoints at their cap again. ``from_key``: the work is new deliveries, all with a
        queue key from there on (a publish); the search past endpoints at their cap may
        start there if nothing else came since the last claim that saw all due work."""
        if not self._search_past_saturated:
            self._search_floor = from_key
        elif self._search_floor is not None:
            self._search_floor = None if from_key is None else min(self._search_floor, from_key)
        self._search_past_saturated = True
        self._new_work = True
        self._wakes += 1
        self._wake.set()

    def _search_all(self) -> None:
        """The next claim looks past endpoints at their cap from the head of the queue."""
        self._search_past_saturated, self._search_floor = True, None
        self._wakes += 1

    def _got_room(self, endpoint_id: int) -> None:
        """A held-back endpoint has room: claim now. Its rows may sit behind a saturated
        endpoint's backlog, so the next claim looks past the saturated endpoints from the
        head of the queue, unless it is at its cap again by then: its rows could not be
        taken, and the search would read the others' backlogs for nothing (the drain of
        one endpoint's large backlog, which refills its cap between two claims, did that
        several times a second, each search reading the whole backlog)."""
        self._roomed.add(endpoint_id)
        self._wakes += 1
        self._wake.set()

    def _at_cap(self, endpoint_id: int) -> bool:
        return self._by_endpoint.get(endpoint_id, 0) >= self.caps.cap(endpoint_id)

    async def _claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries to this engine, in fair order. No publish
        reserves slots (``reserve``) until the dispatcher has counted them in flight (it
        starts them as soon as this returns): the claim counts the slots as they were."""
        self._claiming = True
        try:
            return await self._claim_due(limit)
        finally:
            self._claiming = False

    async def _claim_due(self, limit: int) -> list[Job]:
        loop_time = asyncio.get_running_loop().time()
        probe = loop_time >= self._next_probe_search
        if probe:
            self._next_probe_search = loop_time + self.settings.poll_interval
        new_work, self._new_work = self._new_work, False
        wakes = self._wakes
        roomed = any(not self._at_cap(endpoint_id) for endpoint_id in self._roomed)
        self._claim_started = asyncio.get_running_loop().time()  # the leases run from here
        async with self.db.write_connection() as conn:
            claim = await self.store.claim_due(
                conn,
                owner=self.owner,
                now=utcnow(),
                lease=dt.timedelta(seconds=self.settings.lease_seconds),
                limit=limit,
                in_flight=self._by_endpoint,
                endpoint_caps=self.caps.cap,
                search_past_saturated=self._search_past_saturated or roomed,
                search_from=None if roomed else self._search_floor,
                search_past_capped=new_work,
                probe=probe,
            )
        self._handed_back(claim.put_back)
        report(claim.changes)
        self._held_back = claim.held_back
        if claim.exhausted and wakes == self._wakes:  # nothing came while it ran
            self._search_past_saturated, self._search_floor = False, None
            self._roomed.clear()
        # Attempts that ended while this claim ran checked the previous claim's held-back
        # set; an endpoint of this one that already has room again must not wait for the
        # poll (with an instant receiver, all of an endpoint's attempts can end meanwhile),
        # and its rows may lie anywhere behind the others: search from the head.
        for endpoint_id in claim.held_back:
            if self._has_room(endpoint_id):
                self._got_room(endpoint_id)
        for job in claim.jobs:
            self.caps.ordering(job.endpoint_id, fifo=job.fifo)
        # Rows handed back (open circuit, FIFO turn, rate limit) were due too: a claim that
        # leased ``limit`` rows may have left more due behind them, whatever it kept.
        self._claimed_all = len(claim.jobs) + len(claim.put_back) >= limit
        return await self._throttle(claim.jobs)

    async def _throttle(self, jobs: list[Job]) -> list[Job]:
        """Hand back the jobs their endpoint's rate limit does not let out now, each due
        when its token should be there (an endpoint's k-th refusal one more token later),
        without using an attempt."""
        limited = [job for job in jobs if job.rate_limit is not None]
        if self.limiter is None or not limited:
            return jobs
        limiter = self.limiter
        waits = await asyncio.gather(
            *(limiter.take(str(job.endpoint_id), job.rate_limit or 0.0) for job in limited)
        )
        now = utcnow()
        refused: collections.Counter[int] = collections.Counter()
        back: list[PutBack] = []
        for job, wait in zip(limited, waits, strict=True):
            if wait > 0 and job.rate_limit:
                later = wait + refused[job.endpoint_id] / job.rate_limit
                refused[job.endpoint_id] += 1
                back.append(PutBack(job, now + dt.timedelta(seconds=later), "rate_limit"))
        if not back:
            return jobs
        async with self.db.write_connection() as conn:
            await self.store.put_back(conn, owner=self.owner, items=back, now=now)
        self._handed_back(back)
        refused_ids = {p.job.delivery_id for p in back}
        return [job for job in jobs if job.delivery_id not in refused_ids]

    def _handed_back(self, items: list[PutBack]) -> None:
        """Count what a claim handed back and wake up when the first of it falls due."""
        if not items:
            return
        for p in items:
            metrics.DELIVERIES_THROTTLED.labels(reason=p.reason).inc()
        times = [p.until for p in items if p.until is not None]
        if times:
            delay = (min(times) - utcnow()).total_seconds()
            asyncio.get_running_loop().call_later(max(0.0, delay) + TIMER_SLACK, self.wake)

    # -- dispatcher --------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            free = self.settings.delivery_concurrency - self._in_flight
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            want = min(free, self.settings.claim_batch_size)
            self._wake.clear()
            try:
                jobs = await self._claim(want)
            except Exception as exc:
                jobs, self._claimed_all = [], False
                self._search_all()
                if transaction_conflict(exc):
                    # PostgreSQL aborted the claim to break a deadlock (its locks on the
                    # endpoints it gates against a recorder's): nothing was leased; claim
                    # again at once rather than leave every endpoint to the poll.
                    log.warning("engine.claim_retried", reason="conflict")
                    await asyncio.sleep(random.uniform(0.005, 0.02))  # noqa: S311
                    continue
                log_failure(log, "engine.claim_failed", exc)
                await asyncio.sleep(self.settings.poll_interval)
            for job in jobs:
                self._start_attempt(job)  # the dispatcher does not wait for the outcome
            if self._claimed_all:
                await asyncio.sleep(0)  # more may be due: claim again after letting tasks run
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)
            except TimeoutError:
                # the poll: expired leases, other writers
                self._search_all()
                self._new_work = True
            else:
                wait = self._claim_started + CLAIM_SPACING - asyncio.get_running_loop().time()
                if wait > 0:
                    await asyncio.sleep(wait)

    def _start_attempt(self, job: Job) -> None:
        self._in_flight += 1
        self._by_endpoint[job.endpoint_id] += 1
        metrics.LEASED_BY_CLAIM.inc()
        self._launch(job, self._claim_started)

    def _launch(self, job: Job, leased_at: float) -> None:
        """Send ``job`` (already counted in flight), its lease running from ``leased_at``."""
        self._leases[job.delivery_id] = leased_at
        metrics.DELIVERIES_IN_FLIGHT.inc()
        task = asyncio.create_task(self._attempt(job))
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)

    async def _attempt(self, job: Job) -> None:
        try:
            outcome = await attempt(self.client, job, self.settings)
        except BaseException:
            # Not renewed any more: the row falls due again when its lease runs out.
            self._leases.pop(job.delivery_id, None)
            raise
        self.caps.finished(job.endpoint_id, outcome.duration_ms / 1000)
        self._endpoint_done(job.endpoint_id)
        self._results.put_nowait(outcome)

    def _endpoint_done(self, endpoint_id: int) -> None:
        """An attempt to this endpoint is over. If the last claim left due rows of this
        endpoint behind (its cap), claim again once a quarter of its slots are free: one
        claim per quarter-cap rather than one per attempt, and the endpoint stays between
        3/4 and all of its cap in flight while it has work."""
        count = self._by_endpoint[endpoint_id] - 1
        if count <= 0:
            del self._by_endpoint[endpoint_id]
        else:
            self._by_endpoint[endpoint_id] = count
        if endpoint_id in self._held_back and self._has_room(endpoint_id):
            self._got_room(endpoint_id)

    def _has_room(self, endpoint_id: int) -> bool:
        """A quarter of the endpoint's slots (at least one) are free."""
        cap = self.caps.cap(endpoint_id)
        return self._by_endpoint[endpoint_id] <= cap - max(1, cap // 4)

    # -- deliveries leased at publish (queue.base.Lessee) ------------------------------------

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.lease_seconds)

    def reserve(self, endpoint_ids: Sequence[int]) -> list[int]:
        """New deliveries being published to these endpoints: the indexes of those this
        engine takes at once (leased in the publish transaction), counted in flight from
        now on. Only what a claim would take next: nothing else may be due. The last claim
        leased less than it asked for, no claim is under way or pending (nothing woke the
        dispatcher since: a retry falling due, rows handed back, a publish it did not take,
        an endpoint with room again, the poll), and if that claim left rows behind at
        endpoints' caps, its search past those endpoints found nothing else due; the rows
        of those endpoints are left to the claims. Each within the free slots and its
        endpoint's cap. Spaced like the claims woken by new work (``CLAIM_SPACING`` after
        the last claim or reservation began): publishes closer together are left to the
        next claim, which takes several at once (events 10 ms apart go out from their
        publish one by one; at 500 events/s a few at a time through a claim cost less CPU
        than each on its own)."""
        now = asyncio.get_running_loop().time()
        if (
            self._stopping
            or not self._loops
            or self._claiming
            or self._claimed_all
            or self._new_work
            or self._wake.is_set()
            or (self._held_back and self._search_past_saturated)
            or now - self._claim_started < CLAIM_SPACING
        ):
            return []
        free = self.settings.delivery_concurrency - self._in_flight
        taken: list[int] = []
        for index, endpoint_id in enumerate(endpoint_ids):
            if len(taken) >= free:
                break
            if endpoint_id in self._held_back or self._at_cap(endpoint_id):
                continue
            self._by_endpoint[endpoint_id] += 1
            taken.append(index)
        self._in_flight += len(taken)
        if taken:
            self._claim_started = self._reserved_at = now  # the next claim is spaced
        return taken

    def claims_later(self, endpoint_id: int) -> bool:
        """The endpoint is at its cap and the last claim left its due rows behind: when a
        quarter of its slots are free the engine claims again from the head of the queue
        (``_endpoint_done``), new rows of it included; until then no claim could take them
        (a publish need not wake one). False while a claim runs: its outcome decides."""
        return not self._claiming and endpoint_id in self._held_back and self._at_cap(endpoint_id)

    def release(self, endpoint_ids: Sequence[int]) -> None:
        """Reserved deliveries that will not come: their slots are free again."""
        for endpoint_id in endpoint_ids:
            self._endpoint_done(endpoint_id)
        self._in_flight -= len(endpoint_ids)
        self._slot_freed.set()

    def adopt(self, claim: Claim, endpoint_ids: Sequence[int]) -> None:
        """The publish that reserved ``endpoint_ids`` committed, its rows leased to this
        engine: send ``claim``'s jobs; the slots of what its gate handed back are free."""
        self._handed_back(claim.put_back)
        report(claim.changes)
        remaining = collections.Counter(endpoint_ids)
        for job in claim.jobs:
            remaining[job.endpoint_id] -= 1
        self.release(list(remaining.elements()))
        if self._stopping:
            # Not sent: leased to this engine, they fall due again when the lease runs out.
            self.release([job.endpoint_id for job in claim.jobs])
            return
        for job in claim.jobs:
            self.caps.ordering(job.endpoint_id, fifo=job.fifo)
            self._launch(job, self._reserved_at)
        metrics.LEASED_AT_PUBLISH.inc(len(claim.jobs))

    # -- writer ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._results.get()]
            if self._in_flight > 1 and self._results.qsize() < WRITE_BATCH // 10:
                # More attempts are out: let their outcomes join this transaction. Costs
                # nothing at the receiver, and at moderate load (outcomes a few ms apart)
                # it records several per transaction instead of one.
                await asyncio.sleep(WRITE_LINGER)
            while len(batch) < WRITE_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            try:
                await self._record(batch)
            except Exception as exc:
                # The rows keep their lease and become due again when it expires.
                log_failure(log, "engine.record_failed", exc, count=len(batch))
            finally:
                for outcome in batch:
                    self._results.task_done()
                    self._leases.pop(outcome.job.delivery_id, None)
                self._in_flight -= len(batch)
                metrics.DELIVERIES_IN_FLIGHT.dec(len(batch))
                self._slot_freed.set()

    # -- lease renewal -----------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Extend the leases of attempts still out, a lease from now once they are a third
        of a lease old: a lease then only has to outlast a process that died, not the
        slowest answer (a dead process's rows are due again one lease after its last
        renewal). At everyday load attempts end long before: nothing to write."""
        lease = self.settings.lease_seconds
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(lease / 4)
            started = loop.time()
            stale = [i for i, since in self._leases.items() if started - since >= lease / 3]
            if not stale:
                continue
            try:
                async with self.db.write_connection() as conn:
                    await self.store.renew_leases(
                        conn,
                        owner=self.owner,
                        delivery_ids=stale,
                        now=utcnow(),
                        lease=dt.timedelta(seconds=lease),
                    )
            except Exception as exc:
                # Not renewed: those rows fall due when their lease runs out, as after a crash.
                log_failure(log, "engine.renew_failed", exc, count=len(stale))
                continue
            for delivery_id in stale:
                if delivery_id in self._leases:  # not recorded meanwhile
                    self._leases[delivery_id] = started

    async def _record(self, batch: list[Outcome]) -> None:
        recorded = await record(self.db, self.store, self.owner, batch, self.policy)
        loop = asyncio.get_running_loop()
        for t in recorded.transitions:
            if t.status == DeliveryStatus.RETRYING and t.retry_in is not None:
                loop.call_later(t.retry_in + TIMER_SLACK, self.wake)
        if recorded.woken:
            self.wake()


async def attempt(client: aiohttp.ClientSession, job: Job, settings: Settings) -> Outcome:
    """One HTTP try of ``job``, counted in the metrics."""
    outcome = await perform_attempt(
        client,
        job,
        allow_private=settings.allow_private_targets,
        allow_networks=settings.allowed_network_list,
        body_limit=settings.response_body_limit,
    )
    metrics.attempt_finished(
        job.tenant_ref,
        job.attempt_number,
        outcome.duration_ms / 1000,
        None if outcome.succeeded else outcome.error_kind or "",
    )
    return outcome


def report(changes: list[tuple[Job, Change]]) -> None:
    """Log and count endpoint health transitions."""
    for job, change in changes:
        context = {"tenant_id": job.tenant_ref, "endpoint_id": job.endpoint_ref}
        if change in (Change.DISABLED_GONE, Change.DISABLED_FAILING):
            metrics.ENDPOINTS_DISABLED.labels(reason=change.value).inc()
            log.error("endpoint.disabled", **context, reason=change.value)
        else:
            metrics.BREAKER_TRANSITIONS.labels(to=change.value).inc()
            event = "endpoint.circuit_" + change.value
            if change is Change.OPENED:
                log.warning(event, **context)
            else:
                log.info(event, **context)


async def record(
    db: Database, store: DeliveryStore, owner: str, outcomes: list[Outcome], policy: EndpointPolicy
) -> Recorded:
    """Record a batch of outcomes in one transaction, then log each transition. A
    transaction PostgreSQL aborted to break a deadlock (with a claim locking the same
    endpoint, or another recorder) kept nothing and runs again: otherwise its attempts
    would be sent again once their leases ran out."""
    for conflicts in range(MAX_CONFLICT_RETRIES + 1):
        try:
            async with db.write_connection() as conn:
                recorded = await store.record_outcomes(
                    conn, owner=owner, outcomes=outcomes, policy=policy, now=utcnow()
                )
            break
        except DBAPIError as exc:
            if not transaction_conflict(exc) or conflicts == MAX_CONFLICT_RETRIES:
                raise
            log.warning("engine.record_retried", count=len(outcomes), reason="conflict")
            await asyncio.sleep(random.uniform(0.005, 0.02) * (conflicts + 1))  # noqa: S311
    report(recorded.changes)
    for t in recorded.transitions:
        job = t.outcome.job
        context = {
            "delivery_id": job.message_id,
            "event_id": job.event_id,
            "tenant_id": job.tenant_ref,
            "endpoint_id": job.endpoint_ref,
            "attempt": job.attempt_number,
            "duration_ms": round(t.outcome.duration_ms, 1),
        }
        if t.status == DeliveryStatus.SUCCEEDED:
            log.info("delivery.succeeded", **context, status=t.outcome.response_status)
        elif t.status == DeliveryStatus.RETRYING and t.retry_in is None:
            log.warning("delivery.waiting", **context, error=t.outcome.summary)
        elif t.status == DeliveryStatus.RETRYING:
            log.warning(
                "delivery.retry_scheduled", **context, error=t.outcome.summary, retry_in=t.retry_in
            )
        else:
            metrics.dead_lettered(job.tenant_ref)
            log.error("delivery.dead_lettered", **context, error=t.outcome.summary)
    return recorded


async def deliver_due(
    *,
    settings: Settings,
    db: Database,
    store: DeliveryStore,
    client: aiohttp.ClientSession,
    policy: EndpointPolicy,
    batch: int = 100,
) -> list[Transition]:
    """Attempt every delivery that is due now once, ``batch`` at a time, and record the
    outcomes; what an attempt schedules for later is left for later. The transitions made."""
    owner = worker_id()
    lease = dt.timedelta(seconds=settings.lease_seconds)
    done: list[Transition] = []
    while True:
        async with db.write_connection() as conn:
            claim = await store.claim_due(conn, owner=owner, now=utcnow(), lease=lease, limit=batch)
        if not claim.jobs and not claim.put_back:
            return done
        metrics.LEASED_BY_CLAIM.inc(len(claim.jobs))
        outcomes = await asyncio.gather(*(attempt(client, job, settings) for job in claim.jobs))
        done += (await record(db, store, owner, list(outcomes), policy)).transitions
