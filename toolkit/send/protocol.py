"""The one send protocol: claim in the journal, send, record the outcome.

Every request that imports profiles and starts a trigger (a launch's batch, or one profile
with ``Client.import_and_start``) goes through here, so "nothing is sent twice, nothing is
lost" is written once:

1. **claim**: one ``BEGIN IMMEDIATE`` transaction checks that the same body was never
   (maybe) sent to the same trigger and host, and records the attempt as ``sending``
   before a byte goes out. A process killed from here on leaves ``sending``, which a
   later launch reads as ``unknown``: never re-sent by itself.
2. **send**: one call through the :class:`Sender` (retried only where the retry table
   says a retry cannot send twice).
3. **record** what happened, mapped once from the exception (:func:`_deliver`):

   ============================================  ============  ===================================
   the send                                      journalled    why
   ============================================  ============  ===================================
   answered                                      ``sent``      the platform has it
   :class:`~toolkit.errors.OutcomeUnknown`       ``unknown``   it went out, the answer is lost
   :class:`~toolkit.errors.ApiError`             ``failed``    refused: safe to send again
   :class:`~toolkit.errors.TransportError`       ``failed``    never delivered: safe to send again
   :class:`~toolkit.errors.SourceChangedError`   ``failed``    the body was never made: re-raised
   anything else (Ctrl-C, a bug)                 ``unknown``   it may have gone out; re-raised
   ============================================  ============  ===================================

:class:`Sender` is what the protocol and :class:`~toolkit.send.launch.Launch` need of a
client (a :class:`typing.Protocol`), so neither imports :mod:`toolkit.send.client`.

Example:
    >>> from toolkit.send.journal import Journal
    >>> j = Journal(":memory:")
    >>> lid = j.create_launch(label=None, trigger_id=96, host="http://h", fingerprint="f" * 64,
    ...                       format="json", n_rows=1, summary={}, batches=[(0, "d" * 64, (0,))])
    >>> _deliver(_BatchSlot(j, lid, 0, ("a@x.io",)), lambda: "task-1")
    (<BatchState.SENT: 'sent'>, 'task-1', None)
    >>> j.batch(lid, 0).state, j.batch(lid, 0).task_id
    (<BatchState.SENT: 'sent'>, 'task-1')
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from toolkit.core import contract
from toolkit.core.contract import BatchState
from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    JournalError,
    OutcomeUnknown,
    RequestInfo,
    SourceChangedError,
    ToolkitError,
    TransportError,
)
from toolkit.send.journal import BatchRecord, Journal, SingleRecord
from toolkit.send.retry import RetryPolicy, classify_answer, unknown_reason
from toolkit.send.transport import RetryListener, TaskStatus

if TYPE_CHECKING:
    from toolkit.core.plan import Batch

__all__ = ["Delivery", "Sender", "send_batch_once", "send_single_once"]

log = logging.getLogger("toolkit.send.protocol")

T = TypeVar("T")


class Sender(Protocol):
    """What a launch needs of a client: where it sends, its journal, its policy, three calls.

    :class:`~toolkit.send.client.Client` is one; a test double may be another.
    """

    base_url: str
    #: ``scheme://host[:port]``: with the trigger and the body's digest, a send's identity
    host: str
    retry: RetryPolicy

    @property
    def journal(self) -> Journal: ...

    def call(
        self,
        path: str,
        body: bytes,
        *,
        format: contract.Format = "json",
        idempotent: bool,
        list_paths: frozenset[tuple[str, ...]] = frozenset(),
        on_retry: RetryListener | None = None,
    ) -> dict[str, Any]: ...

    def send_batch(self, batch: Batch, *, on_retry: RetryListener | None = None) -> str: ...

    def task_status(
        self, task_id: str, *, format: contract.Format = "json", on_retry: RetryListener | None = None
    ) -> TaskStatus: ...


# --- the one mapping from what happened to the journal ---------------------------------------------
class _Slot(Protocol):
    """One claimed attempt in the journal, and how it records each outcome."""

    def sent(self, answer: Any) -> None: ...

    def unknown(self, exc: BaseException) -> None: ...

    def failed(self, exc: ApiError | TransportError | SourceChangedError) -> None: ...


def _deliver(slot: _Slot, send: Callable[[], T]) -> tuple[BatchState, T | None, ToolkitError | None]:
    """Send a claimed attempt and record its outcome; returns ``(state, answer, error)``.

    Anything that is not a toolkit error (Ctrl-C, a bug) is recorded as ``unknown`` (the
    request may have gone out) and re-raised.
    """
    try:
        answer = send()
    except OutcomeUnknown as exc:
        slot.unknown(exc)
        return BatchState.UNKNOWN, None, exc
    except (ApiError, TransportError) as exc:  # refused, or never delivered (OutcomeUnknown is above)
        slot.failed(exc)
        return BatchState.FAILED, None, exc
    except SourceChangedError as exc:  # raised making the body, before a byte went out: the launch stops
        slot.failed(exc)
        raise
    except BaseException as exc:
        slot.unknown(exc)
        raise
    slot.sent(answer)
    return BatchState.SENT, answer, None


# --- a launch's batch ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BatchSlot:
    journal: Journal
    launch_id: str
    index: int
    keys: Sequence[str]

    def sent(self, answer: str) -> None:
        try:
            self.journal.mark_sent(self.launch_id, self.index, answer, self.keys)
        except JournalError as exc:
            raise JournalError(
                f"batch {self.index} of launch {self.launch_id} was sent (task {answer}), but the journal could "
                f"not record it: {exc}. The journal keeps it as in flight (read as unknown later: never re-sent "
                "by itself); the launch stopped here",
                path=exc.path,
            ) from None

    # the journal redacts the batch's match keys from the platform's words it keeps
    def unknown(self, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, OutcomeUnknown) else f"{type(exc).__name__}: {exc}"
        self.journal.mark_unknown(self.launch_id, self.index, reason, keys=self.keys)

    def failed(self, exc: ApiError | TransportError | SourceChangedError) -> None:
        self.journal.mark_failed(
            self.launch_id, self.index, str(exc), code=getattr(exc, "code", None), keys=self.keys
        )


@dataclass(frozen=True)
class Delivery:
    """What became of one batch: its state now, the error that put it there (if any), and,
    when it was not sent now, the journal record that was in the way."""

    state: BatchState
    error: ToolkitError | None = None
    #: the platform's task id when it was sent now
    task_id: str | None = None
    #: set when nothing was sent: this batch itself (sent before) or another launch's batch
    #: with the same body, which this one now follows
    holder: BatchRecord | None = None


def send_batch_once(
    sender: Sender,
    launch_id: str,
    batch: Batch,
    *,
    exclusive: bool = True,
    resend: bool = False,
    owner: str | None = None,
    on_claim: Callable[[], None] | None = None,
    on_retry: RetryListener | None = None,
) -> Delivery:
    """Claim one batch of a launch in the journal, send it, record the outcome.

    Nothing is sent when the batch was (maybe) sent before, or, with ``exclusive``, when
    another launch sent (or is sending) the same body to the same trigger and host: the
    batch then follows that one (:meth:`~toolkit.send.journal.Journal.link`). ``resend``
    lets an ``unknown`` batch be claimed again (the user decided), unless another launch
    delivered the same body (or a live process is sending it): it then follows that one.
    ``owner`` is the launch's lease holder: a claim after the lease was taken over raises
    :class:`~toolkit.errors.AlreadyLaunched`. ``on_claim`` is called once the batch is
    claimed, before it goes out. Never raises for the platform's answer:
    :attr:`Delivery.error` carries it; a journal that cannot record raises
    :class:`~toolkit.errors.JournalError` (nothing is sent when it cannot claim).

    Example (needs a server)::

        send_batch_once(client, launch.launch_id, plan.batches[0]).state   # BatchState.SENT
    """
    journal = sender.journal
    holder = journal.claim(launch_id, batch.index, exclusive=exclusive, resend=resend, owner=owner)
    if holder is not None:
        if (holder.launch_id, holder.index) == (launch_id, batch.index):
            return Delivery(holder.state, holder=holder)
        log.warning(
            "batch %d: the same body was sent by launch %s; following it, not sending again",
            batch.index,
            holder.launch_id,
        )
        journal.link(launch_id, batch.index, holder)
        return Delivery(journal.batch(launch_id, batch.index).state, holder=holder)
    if on_claim is not None:
        on_claim()
    slot = _BatchSlot(journal, launch_id, batch.index, batch.keys)
    state, task_id, error = _deliver(slot, lambda: sender.send_batch(batch, on_retry=on_retry))
    return Delivery(state, error=error, task_id=task_id)


# --- one profile (Client.import_and_start) ----------------------------------------------------------------
@dataclass(frozen=True)
class _SingleSlot:
    journal: Journal
    send_id: str

    def sent(self, answer: dict[str, Any]) -> None:
        profile_id, task_id = answer.get("profile_id"), answer.get("task_id")
        self.journal.mark_single_sent(
            self.send_id,
            profile_id=None if profile_id in (None, "") else str(profile_id),
            task_id=None if task_id in (None, "") else str(task_id),
        )

    def unknown(self, exc: BaseException) -> None:
        if isinstance(exc, OutcomeUnknown):
            self.journal.mark_single_unknown(self.send_id, _unknown_reason(exc))
        else:
            self.journal.mark_single_unknown(
                self.send_id, f"interrupted while sending ({type(exc).__name__})"
            )

    def failed(self, exc: ApiError | TransportError | SourceChangedError) -> None:
        # the journal keeps the toolkit's words, never the platform's text
        if isinstance(exc, ApiError):
            self.journal.mark_single_failed(
                self.send_id, f"{type(exc).__name__}: refused by the platform", code=exc.code
            )
        else:
            self.journal.mark_single_failed(self.send_id, "TransportError: never delivered")


def send_single_once(
    sender: Sender, body: bytes, *, trigger_id: int, format: contract.Format = "json", force: bool = False
) -> dict[str, Any]:
    """Claim one profile's ``import_and_start`` body in the journal, send it, record the outcome.

    The send is identified by the host, the trigger and the sha256 of the body (no token in
    it). Raises :class:`~toolkit.errors.AlreadyLaunched` when it was sent before,
    :class:`~toolkit.errors.OutcomeUnknown` when an earlier answer was lost (or this one is),
    and the platform's :class:`~toolkit.errors.ApiError` when it refuses; ``force=True``
    sends anyway. Returns the platform's answer.

    Example (needs a server)::

        send_single_once(client, body, trigger_id=96)   # {'error': 0, 'profile_id': ...}
    """
    journal = sender.journal
    record, claimed = journal.claim_single(
        host=sender.host, trigger_id=trigger_id, digest=hashlib.sha256(body).hexdigest(), format=format,
        force=force,
    )  # fmt: skip
    if not claimed:
        if record.state == BatchState.SENT:
            raise AlreadyLaunched(_single_sent_message(record), previous=record)
        raise OutcomeUnknown(
            _single_unknown_message(record),
            request=RequestInfo("POST", sender.base_url + contract.SINGLE_PATH),
        )
    state, payload, error = _deliver(
        _SingleSlot(journal, record.send_id),
        lambda: sender.call(contract.SINGLE_PATH, body, format=format, idempotent=False),
    )
    if isinstance(error, OutcomeUnknown):
        raise OutcomeUnknown(
            f"import_and_start to trigger {trigger_id} on {sender.host}: {_unknown_reason(error)}; the platform "
            "may have imported the profile and started the trigger, so it is journalled as unknown and never "
            "re-sent by itself: check the platform, then call import_and_start(..., force=True) to send it "
            "again if it was not imported",
            request=error.request,
            response=error.response,
        ) from error
    if error is not None:
        raise error
    assert payload is not None and state == BatchState.SENT
    return payload


def _when(timestamp: str) -> str:
    return timestamp[:19].replace("T", " ") + " UTC"


def _single_sent_message(record: SingleRecord) -> str:
    answer = f", profile {record.profile_id}" if record.profile_id else ""
    answer += f", task {record.task_id}" if record.task_id else ""
    return (
        f"this profile was already sent to trigger {record.trigger_id} on {record.host} with "
        f"import_and_start at {_when(record.finished_at or record.sent_at)}{answer} (journal send "
        f"{record.send_id}). Nothing was sent now; to send it again on purpose: "
        "client.import_and_start(..., force=True)"
    )


def _single_unknown_message(record: SingleRecord) -> str:
    if record.state == BatchState.SENDING:
        what = (
            f"is being sent by another process since {_when(record.sent_at)}, or was caught in flight "
            "when its process stopped"
        )
    else:
        what = f"was sent at {_when(record.sent_at)} but {record.error or 'its answer was lost'}"
    return (
        f"this profile's import_and_start to trigger {record.trigger_id} on {record.host} {what} "
        f"(journal send {record.send_id}): the platform may or may not have imported it and started "
        "the trigger. Nothing was sent now. Check on the platform first; if it was not imported, "
        "client.import_and_start(..., force=True) sends it again"
    )


def _unknown_reason(exc: OutcomeUnknown) -> str:
    """Why an outcome is unknown, in the toolkit's words (no server text, no token)."""
    if exc.response is not None:
        status = exc.response.status_code
        failure = classify_answer(status, None, readable=status >= 400, retry_after=False)
        if failure is not None:
            return unknown_reason(failure, status)
    cause = exc.__cause__
    if cause is not None:
        return f"its answer was lost ({type(cause).__name__})"
    return "its answer was lost"
