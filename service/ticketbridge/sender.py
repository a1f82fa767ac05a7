"""Sending: one sender per destination turns due deliveries into API calls.

The dispatcher reads due deliveries from the ledger (ids only) and hands each
to a worker task, at most `concurrency` at a time and never two of the same
incident at once, so operations on one incident run in event order. Every
state change is written to the ledger before the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter

from ticketbridge import crashpoints, lifecycle
from ticketbridge.breaker import Breaker, CircuitState, Probe
from ticketbridge.config.model import DEFAULT_LIFECYCLE, HttpSettings, Lifecycle
from ticketbridge.destinations.base import (
    Destination,
    PermanentError,
    Reopens,
    TicketNotFound,
    TicketRef,
    TicketView,
    TransientError,
)
from ticketbridge.ledger import Delivery, Ledger
from ticketbridge.metrics import Metrics
from ticketbridge.mirror import note_twins, shadow_delivery

log = logging.getLogger(__name__)

IDLE_WAKE = 1.0


@dataclass(frozen=True, slots=True)
class Plan:
    operation: str
    ticket: TicketRef | None = None
    marker: str = ""
    skip_reason: str = ""


# Operations on a ticket the bridge believes open: read it first, so a ticket a
# person closed or moved on is not fought over.
PRE_READ = ("comment", "resolve")


def default_rules(route: str) -> Lifecycle:
    return DEFAULT_LIFECYCLE


class Sender:
    """Works the deliveries of one destination; `rules` gives a route's lifecycle."""

    def __init__(
        self,
        name: str,
        destination: Destination,
        settings: HttpSettings,
        ledger: Ledger,
        metrics: Metrics,
        failure_threshold: int,
        rules: Callable[[str], Lifecycle] = default_rules,
        *,
        breaker: Breaker | None = None,
        probe: Probe | None = None,
    ) -> None:
        self.rules = rules
        self.name = name
        self.destination = destination
        self.settings = settings
        self.ledger = ledger
        self.metrics = metrics
        self.failure_threshold = failure_threshold
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._paused_until = 0.0
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_initial,
            max=settings.backoff_max,
            jitter=settings.backoff_initial,
        )
        self._task: asyncio.Task[None] | None = None
        metrics.add_destination(name)
        # The circuit stops dispatching while the destination is down; `probe`
        # tells it, after the cool-down, whether the destination answers again.
        self.breaker = breaker
        self._probe = probe

    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Start dispatching; with `after`, only once that task has finished.

        On a reload the new sender of a changed destination starts after the
        old one has stopped: two senders of one destination at once could
        both take the same delivery and, say, create its ticket twice.
        """
        self._task = asyncio.create_task(
            self._dispatch(after), name=f"sender:{self.name}"
        )

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Take no new work; give in-flight requests `grace` seconds, then cancel.

        A cancelled request is safe: its attempt is in the ledger, and the next
        run looks the marker up before it creates again.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            # The dispatcher may be running a circuit probe: bound the wait.
            await asyncio.wait([self._task], timeout=grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        in_flight = list(self._busy.values())
        if in_flight:
            _, pending = await asyncio.wait(in_flight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.destination.close()

    # -- dispatching ------------------------------------------------------

    async def _dispatch(self, after: asyncio.Task[None] | None = None) -> None:
        if after is not None:
            await asyncio.wait([after])
        while not self._stopping:
            try:
                await self._dispatch_due()
            except Exception:
                log.exception("dispatcher error", extra={"destination": self.name})
            await self._sleep_until_due()

    async def _dispatch_due(self) -> None:
        now = time.time()
        free = self.settings.concurrency - len(self._busy)
        if free <= 0 or now < self._paused_until:
            return
        # After a Retry-After pause, not during it: the two never overlap.
        if not await self._circuit_closed():
            return
        due = await self.ledger.due(self.name, now, list(self._busy), free)
        for delivery_id, incident in due:
            task = asyncio.create_task(self._work(delivery_id, incident))
            self._busy[incident] = task
        if len(due) < free:
            await note_twins(self.name, self.destination, self.ledger, self._busy)

    async def _circuit_closed(self) -> bool:
        if self.breaker is None or self.breaker.allows():
            return True
        if self._probe is None:
            return False
        return await self.breaker.try_close(self._probe)

    async def _sleep_until_due(self) -> None:
        self._wake.clear()
        delay = IDLE_WAKE
        blocked = self._blocked_for()
        if blocked is not None:
            # Due deliveries wait for the pause or cool-down; do not spin.
            delay = min(delay, blocked)
        else:
            next_due = await self.ledger.next_due_time(self.name)
            if next_due is not None:
                delay = max(0.0, min(delay, next_due - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))

    def _blocked_for(self) -> float | None:
        """Seconds until a Retry-After pause or an open circuit lets work go."""
        waits = []
        if self._paused_until > time.time():
            waits.append(self._paused_until - time.time())
        if self.breaker is not None and self.breaker.state is CircuitState.OPEN:
            waits.append(self.breaker.cooldown_left())
        return max(waits) if waits else None

    async def _work(self, delivery_id: int, incident: str) -> None:
        try:
            await self.process(delivery_id)
        except Exception as exc:
            # Left due, the delivery would be taken again at once, in a loop.
            await self._crashed(delivery_id, exc)
        finally:
            self._busy.pop(incident, None)
            self._wake.set()

    # -- one delivery -----------------------------------------------------

    async def process(self, delivery_id: int) -> None:
        delivery = await self.ledger.delivery(delivery_id)
        if delivery.state == "sent":
            await self._verify(delivery, delivery.operation or "create")
            return
        if delivery.role == "shadow":
            reason = await shadow_delivery(self.destination, delivery)
            await self.ledger.mark_skipped(delivery, reason)
            self._count(delivery, "skip", "skipped", reason, duration=0.0)
            return

        plan = await self._plan(delivery)
        if plan.operation == "skip":
            await self.ledger.mark_skipped(delivery, plan.skip_reason)
            self._count(delivery, "skip", "skipped", plan.skip_reason, duration=0.0)
            return
        if self._needs_pre_read(delivery, plan) and await self._closed_elsewhere(
            delivery, plan
        ):
            return

        if plan.operation == "create" and await self._unsettled(delivery):
            return

        await self.ledger.start_attempt(
            delivery.id, plan.operation, self._settle_time(plan.operation)
        )
        delivery = await self.ledger.delivery(delivery.id)
        started = time.monotonic()
        try:
            ref = await self._apply(delivery, plan)
        except TransientError as exc:
            await self._answered(exc)
            await self._failed(delivery, plan.operation, exc, started, transient=True)
            return
        except PermanentError as exc:
            await self._answered(exc)
            await self._failed(delivery, plan.operation, exc, started, transient=False)
            return
        except Exception as exc:
            error = self._unexpected(delivery, plan.operation, exc)
            await self._failed(
                delivery, plan.operation, error, started, transient=False
            )
            return
        await self._answered(None)

        crashpoints.reach("before_ledger_write")
        marker = delivery.marker if plan.operation == "create" else plan.marker
        duration = time.monotonic() - started
        await self.ledger.mark_sent(
            delivery, plan.operation, ref.id, ref.key, marker, duration
        )
        self._count(
            delivery, plan.operation, "sent", ref.key, duration=duration, ticket=ref.key
        )
        await self._verify(await self.ledger.delivery(delivery.id), plan.operation)

    async def _plan(self, delivery: Delivery) -> Plan:
        """Choose the operation by the route's lifecycle rules (lifecycle.py)."""
        ticket = await self.ledger.latest_ticket(self.name, delivery.incident_key)
        history = await self.ledger.history(delivery)
        step = lifecycle.decide(
            delivery.event,
            ticket,
            history,
            self.rules(delivery.route),
            can_reopen=isinstance(self.destination, Reopens),
        )

        if step.operation == "skip":
            return Plan("skip", skip_reason=step.reason)
        if step.operation == "create":
            if step.reason:
                log.info(step.reason, extra=self._fields(delivery))
            return Plan("create")
        assert ticket is not None
        ref = TicketRef(ticket.ticket_id, ticket.ticket_key)
        return Plan(step.operation, ref, ticket.marker)

    def _needs_pre_read(self, delivery: Delivery, plan: Plan) -> bool:
        # A resolve already attempted may have closed the ticket itself.
        if plan.operation == "resolve" and delivery.attempts > 0:
            return False
        return plan.operation in PRE_READ

    async def _closed_elsewhere(self, delivery: Delivery, plan: Plan) -> bool:
        """Read the ticket first; if a person closed it, leave it closed.

        Returns True when the delivery is settled here: the event is added as
        a comment where the destination allows it, and the delivery skipped.
        """
        assert plan.ticket is not None
        started = time.monotonic()
        try:
            view = await self.destination.get(plan.ticket, plan.marker)
        except TicketNotFound:
            view = TicketView(plan.ticket, False, False, "deleted")
        except (TransientError, PermanentError) as exc:
            transient = isinstance(exc, TransientError)
            await self._failed(
                delivery, plan.operation, exc, started, transient=transient
            )
            return True
        except Exception as exc:
            error = self._unexpected(delivery, plan.operation, exc)
            await self._failed(
                delivery, plan.operation, error, started, transient=False
            )
            return True
        if view.is_open:
            return False

        await self._comment_anyway(delivery, plan.ticket)
        await self._settle_closed(delivery, plan.ticket, view)
        return True

    async def _comment_anyway(self, delivery: Delivery, ticket: TicketRef) -> None:
        try:
            await self.destination.comment(ticket, delivery.event)
        except Exception as exc:
            # Best effort: the ticket is settled as closed either way.
            log.warning(
                "comment on a closed ticket refused: %s",
                exc,
                extra=self._fields(delivery, ticket=ticket.key),
            )

    async def _settle_closed(
        self, delivery: Delivery, ticket: TicketRef, view: TicketView
    ) -> None:
        reason = f"closed by a person: status {view.status}"
        resolution = view.resolution or view.status
        await self.ledger.mark_closed_elsewhere(delivery, ticket.id, resolution, reason)
        self._count(delivery, "skip", "skipped", reason, duration=0.0)

    def _settle_time(self, operation: str) -> float | None:
        """When a lookup is sure to see what a create sent now may have made.

        It assumes the destination acts on a request within `timeout` of
        receiving it or not at all, and shows a new ticket in lookups by
        marker within `search_lag`. A server that acts later than that (a
        request stuck in its queue) can still lead to a second ticket.
        """
        if operation != "create":
            return None
        return time.time() + self.settings.timeout + self.settings.search_lag

    async def _unsettled(self, delivery: Delivery) -> bool:
        """Postpone a create whose earlier attempt may not be visible yet.

        Looking the marker up too early (the search lags behind creates)
        would miss the earlier ticket and create a second one.
        """
        settle = delivery.settle_until
        if delivery.attempts == 0 or settle is None or settle <= time.time():
            return False
        log.debug(
            "create waits for the lookup to settle",
            extra=self._fields(delivery, until=round(settle, 3)),
        )
        await self.ledger.postpone(delivery.id, settle)
        return True

    async def _apply(self, delivery: Delivery, plan: Plan) -> TicketRef:
        event = delivery.event
        if plan.operation == "create":
            # An earlier attempt may have created the ticket before we lost the
            # answer (timeout, reset, crash): look the marker up first.
            if delivery.attempts > 1:  # this attempt is already counted
                found = await self.destination.find(delivery.marker)
                if found is not None:
                    log.info(
                        "found ticket of an earlier attempt",
                        extra=self._fields(delivery, ticket=found.key),
                    )
                    return found
            return await self.destination.create(event, delivery.marker)

        assert plan.ticket is not None
        if plan.operation == "resolve":
            await self.destination.resolve(plan.ticket, event)
        elif plan.operation == "reopen":
            assert isinstance(self.destination, Reopens)
            await self.destination.reopen(plan.ticket, event)
        else:
            await self.destination.comment(plan.ticket, event)
        return plan.ticket

    async def _verify(self, delivery: Delivery, operation: str) -> None:
        """A follow-up read by ticket id must show the marker and the state."""
        if delivery.ticket_id is None or delivery.ticket_key is None:
            raise RuntimeError(f"delivery {delivery.id} was sent without a ticket")
        ref = TicketRef(delivery.ticket_id, delivery.ticket_key)
        marker = await self._marker_of(delivery)
        started = time.monotonic()
        try:
            view = await self.destination.get(ref, marker)
        except (TransientError, PermanentError) as exc:
            await self._answered(exc)
            self.metrics.verifications.labels(self.name, "error").inc()
            await self._failed(
                delivery, "verify", exc, started, transient=True, keep_state=True
            )
            return
        except Exception as exc:
            error = self._unexpected(delivery, "verify", exc)
            await self._failed(delivery, "verify", error, started, transient=False)
            return

        await self._answered(None)
        crashpoints.reach("during_verify")
        want_open = operation != "resolve"
        if view.marker_present and view.is_open == want_open:
            await self.ledger.mark_verified(delivery, operation, view.resolution)
            self.metrics.verifications.labels(self.name, "verified").inc()
            duration = time.monotonic() - started
            self._count(delivery, operation, "verified", ref.key, duration=duration)
            return
        if operation == "comment" and view.marker_present and not view.is_open:
            # The comment landed, but a person has closed the ticket meanwhile.
            self.metrics.verifications.labels(self.name, "verified").inc()
            await self._settle_closed(delivery, ref, view)
            return

        self.metrics.verifications.labels(self.name, "mismatch").inc()
        problem = mismatch(view.marker_present, view.is_open, want_open, view.status)
        # A resolve that did not take is done again; a create or comment is only
        # read again, since repeating it would make a second ticket or comment.
        redo = operation == "resolve" and view.marker_present
        await self._failed(
            delivery,
            "verify",
            TransientError(f"ticket {ref.key}: {problem}"),
            started,
            transient=True,
            keep_state=not redo,
        )

    async def _marker_of(self, delivery: Delivery) -> str:
        if delivery.operation == "create":
            return delivery.marker
        ticket = await self.ledger.open_ticket(self.name, delivery.incident_key)
        if ticket is not None and ticket.ticket_id == delivery.ticket_id:
            return ticket.marker
        rows = await self.ledger.rows(
            "SELECT marker FROM tickets WHERE destination = ? AND ticket_id = ?",
            (self.name, delivery.ticket_id),
        )
        return str(rows[0]["marker"]) if rows else delivery.marker

    async def _failed(
        self,
        delivery: Delivery,
        operation: str,
        exc: Exception,
        started: float,
        *,
        transient: bool,
        keep_state: bool = False,
    ) -> None:
        failures = delivery.consecutive_failures + 1
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # The destination asked for a pause: it applies to every request.
            self._paused_until = max(self._paused_until, time.time() + retry_after)

        retry_at = None
        if transient and failures <= self.failure_threshold:
            retry_at = time.time() + self._wait(failures, retry_after)
        kind = "transient" if transient else "permanent"
        error = f"{kind}: {exc}"
        status = getattr(exc, "status", None)
        self.metrics.count_rejection(self.name, status)
        duration = time.monotonic() - started
        state = await self.ledger.mark_failed(
            delivery,
            operation,
            error,
            status=status,
            duration=duration,
            retry_at=retry_at,
            keep_state=keep_state,
            # Only an answer that proves nothing was done rules a create out.
            settled=operation == "create" and not getattr(exc, "ambiguous", False),
        )
        await self._record_error(error)
        outcome = "dead" if state == "dead" else "retrying"
        self._count(
            delivery, operation, outcome, error, failures=failures, duration=duration
        )

    def _unexpected(
        self, delivery: Delivery, operation: str, exc: Exception
    ) -> PermanentError:
        """An exception that is no DestinationError, as a permanent failure.

        It is a bug in a client or a library (e.g. aiohttp's ValueError for a
        malformed URL): the same call would raise it again, so it is not retried.
        """
        log.error(
            "unexpected error in delivery",
            exc_info=exc,
            extra=self._fields(delivery, operation=operation),
        )
        error = PermanentError(
            f"unexpected {type(exc).__name__}: {exc}", reason="unexpected"
        )
        error.__cause__ = exc
        return error

    async def _crashed(self, delivery_id: int, exc: Exception) -> None:
        """Record an exception that escaped `process` as a permanent failure.

        Whatever raised it (a shadow preview, a ledger read) would raise again
        on the next try, so the delivery goes dead, where an alert sees it,
        instead of being taken again at once forever.
        """
        try:
            delivery = await self.ledger.delivery(delivery_id)
            operation = delivery.operation or "process"
            error = self._unexpected(delivery, operation, exc)
            await self._failed(
                delivery, operation, error, time.monotonic(), transient=False
            )
        except Exception:
            log.exception(
                "unexpected error in delivery, not recorded",
                extra={"destination": self.name, "delivery": delivery_id},
            )

    async def _record_error(self, error: str) -> None:
        """Keep the destination's last error for `ticketbridge status`."""
        try:
            await self.ledger.record_destination_status(self.name, last_error=error)
        except Exception as exc:
            log.warning(
                "destination status not recorded: %s",
                exc,
                extra={"destination": self.name},
            )

    async def _answered(self, exc: Exception | None) -> None:
        """Tell the circuit breaker how a request to the destination went.

        A 429 is not an outage: the destination answered and asked for a
        pause, which the Retry-After pause handles.
        """
        if self.breaker is None:
            return
        if isinstance(exc, TransientError) and exc.status != 429:
            await self.breaker.failure(str(exc))
        else:
            await self.breaker.success()

    def _wait(self, failures: int, retry_after: float | None) -> float:
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = failures
        backoff = float(self._backoff(state))
        if retry_after is not None:
            # Never earlier than asked; a little jitter so retries do not align.
            return max(retry_after, 1.0) + random.uniform(0, 0.5)
        return backoff

    def _count(
        self,
        delivery: Delivery,
        operation: str,
        outcome: str,
        detail: str,
        *,
        duration: float,
        failures: int | None = None,
        ticket: str | None = None,
    ) -> None:
        self.metrics.deliveries_total.labels(self.name, operation, outcome).inc()
        level = logging.WARNING if outcome in ("dead", "retrying") else logging.INFO
        if outcome == "dead":
            level = logging.ERROR
        fields = self._fields(
            delivery,
            operation=operation,
            outcome=outcome,
            duration=round(duration, 3),
        )
        if failures is not None:
            fields["consecutive_failures"] = failures
        if ticket is not None:
            fields["ticket"] = ticket
        log.log(level, "delivery %s: %s", outcome, detail, extra=fields)

    def _fields(self, delivery: Delivery, **more: object) -> dict[str, object]:
        fields: dict[str, object] = {
            "event": f"{delivery.event.source}:{delivery.event.source_event_id}",
            "delivery": delivery.id,
            "destination": self.name,
            "incident": delivery.incident_key,
            "attempt": delivery.attempts,
        }
        if delivery.ticket_key:
            fields["ticket"] = delivery.ticket_key
        fields.update(more)
        return fields


def mismatch(marker_present: bool, is_open: bool, want_open: bool, status: str) -> str:
    if not marker_present:
        return "correlation marker missing on the ticket (dropped by the destination?)"
    expected = "open" if want_open else "resolved"
    return f"expected {expected}, ticket status is {status!r}"
