"""Preflight: what the platform's catalog says about a plan, before anything is sent.

:func:`preflight` reads the trigger, its database's profile fields and the resources the
mapping uses (read-only catalog calls, :mod:`toolkit.send.catalog`) and returns the problems
in plain language:

=====================  =========  =================================================================
``code``               severity   meaning
=====================  =========  =================================================================
``trigger_missing``    error      the platform has no trigger with this id
``trigger_inactive``   error      the trigger is not active: the platform would not start it
``trigger_type``       error      not an API-call trigger: the import methods do not start it
``unknown_field``      error      a mapped profile field is not a field of the trigger's database
                                  (the platform would add it to every profile); with "did you mean"
``resource_unknown``   error      a resource the mapping uses does not exist
``resource_channel``   error      a resource the mapping uses has no such channel
``catalog_forbidden``  warning    the token may not read a catalog call (401/403): not checked
``catalog_unavailable`` warning   a catalog call failed otherwise: not checked
``sample_data``        error      made-up people (the sample) bound for the real platform
=====================  =========  =================================================================

``Client.launch`` runs it first and raises :class:`~toolkit.errors.PreflightError` when a
problem is an error (``preflight=False`` skips the catalog checks); warnings are logged.
The sample check (:func:`sample_problem`) runs whatever ``preflight`` says, unless
``allow_sample=True``.

Example:
    >>> Problem("trigger_inactive", "trigger 96 'Welcome' is not active")
    Problem(code='trigger_inactive', message="trigger 96 'Welcome' is not active", severity='error')
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from toolkit.core.contract import PROFILE_ID_FIELD, SYSTEM_FIELDS, Channel
from toolkit.errors import ApiError, AuthError, PreflightError, TransportError, did_you_mean
from toolkit.send.catalog import (
    API_CALL,
    ResourceInfo,
    TriggerInfo,
    database_fields,
    get_resource,
    get_trigger,
    list_resources,
    list_triggers,
)
from toolkit.send.target import target_label

if TYPE_CHECKING:
    from toolkit.core.plan import Plan

__all__ = ["Problem", "preflight", "raise_for_problems", "sample_problem"]

log = logging.getLogger("toolkit.send.preflight")

T = TypeVar("T")
Severity = Literal["error", "warning"]
#: Error codes meaning "no such object" on a catalog call (docs: 404 no such database/resource).
_NOT_FOUND = frozenset({400, 404})
#: Channel names a resource may list for a subscription's channel (the seed's ``phone`` is SMS).
_SAME_CHANNEL: dict[str, set[str]] = {Channel.PHONE: {"sms", "phone"}, Channel.SMS: {"sms", "phone"}}


@dataclass(frozen=True)
class Problem:
    """One thing preflight found, in plain language; ``severity`` ``warning`` does not stop a launch."""

    code: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return self.message


class _Checks:
    """The problems found so far, and the one way a catalog call's failure becomes one."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.problems: list[Problem] = []
        #: a list call answered "not found": this platform (an older sandbox) serves no catalog
        self.unserved = False

    def add(self, code: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(code, message, severity))

    def read(
        self,
        what: str,
        unchecked: str,
        call: Callable[[], T],
        *,
        missing: Callable[[ApiError], None] | None = None,
        listing: bool = False,
    ) -> T | None:
        """``call()``, or ``None`` with a problem: ``missing`` decides for a "no such object" error;
        a list call (``listing``) that is "not found" means the catalog is not served at all."""
        if self.unserved:
            return None
        try:
            return call()
        except AuthError as exc:
            self.add("catalog_forbidden", f"the token may not read {what} (error {exc.code}): {unchecked} not "
                                          "checked; give the token read access to it, or check by hand", "warning")  # fmt: skip
        except ApiError as exc:
            if listing and exc.code in _NOT_FOUND:
                self.unserved = True
                self.add("catalog_unavailable", f"{target_label(self.client, ask=False)} does not serve the catalog "
                         f"({what} answered error {exc.code}): trigger, fields and resources were not checked",
                         "warning")  # fmt: skip
            elif missing is not None and exc.code in _NOT_FOUND:
                missing(exc)
            else:
                self.add("catalog_unavailable", f"{what} answered error {exc.code} ({exc.text or 'no reason'}): "
                                                f"{unchecked} not checked", "warning")  # fmt: skip
        except TransportError as exc:
            self.add("catalog_unavailable", f"{what} could not be read ({type(exc).__name__}): {unchecked} not checked",
                     "warning")  # fmt: skip
        return None


def _suggest(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    hint = did_you_mean(name, choices)  # "; did you mean 'x'?"
    return f" ({hint[2:]})" if hint else ""


def _trigger_id(plan: Plan, trigger: Any) -> int:
    value = getattr(trigger, "trigger_id", trigger) if trigger is not None else plan.trigger.trigger_id
    return int(value)


def preflight(client: Any, plan: Plan, trigger: Any = None) -> list[Problem]:
    """The problems the platform's catalog shows for ``plan`` (its trigger, or ``trigger``).

    ``client`` is a :class:`~toolkit.send.client.Client`; ``trigger`` an id or a
    :class:`~toolkit.core.mapping.Trigger` (default: the plan's). Never raises for the
    platform's answers: a catalog call the token may not make (403) is a warning.

    Example (needs a server)::

        for problem in preflight(client, plan):
            print(problem.severity, problem)
    """
    checks = _Checks(client)
    trigger_id = _trigger_id(plan, trigger)
    info = _check_trigger(checks, trigger_id)
    if info is not None:
        _check_fields(checks, plan, info)
    _check_resources(checks, plan)
    return checks.problems


def _check_trigger(checks: _Checks, trigger_id: int) -> TriggerInfo | None:
    def missing(exc: ApiError) -> None:
        # a "not found" may also be a platform without this method: the list tells which
        known = checks.read("campaigns/triggers/list", f"trigger {trigger_id}", lambda: list_triggers(checks.client),
                            listing=True)  # fmt: skip
        if known is None:
            return
        if any(t.id == trigger_id for t in known):
            checks.add("catalog_unavailable", f"trigger {trigger_id} is listed but could not be read (error "
                                              f"{exc.code}): it was not checked", "warning")  # fmt: skip
            return
        usable = [f"{t.id} {t.name!r}" for t in known if t.is_active and t.is_api_call][:5]
        checks.add("trigger_missing", f"trigger {trigger_id} does not exist on {target_label(checks.client, ask=False)}"
                   + (f"; active API-call triggers there: {', '.join(usable)}" if usable else ""))  # fmt: skip

    info = checks.read("campaigns/triggers/get", f"trigger {trigger_id}",
                       lambda: get_trigger(checks.client, trigger_id), missing=missing)  # fmt: skip
    if info is None:
        return None
    name = f"{trigger_id}{f' {info.name!r}' if info.name else ''}"
    if info.is_active is False:
        checks.add("trigger_inactive", f"trigger {name} is not active: the platform starts only active triggers; "
                                       "activate it on the platform first")  # fmt: skip
    if info.trigger_type is not None and not info.is_api_call:
        checks.add("trigger_type", f"trigger {name} is a {info.trigger_type!r} trigger, not an API-call trigger "
                                   f"({API_CALL!r}): import_and_start_batch_task starts only API-call triggers")  # fmt: skip
    return info


def _check_fields(checks: _Checks, plan: Plan, info: TriggerInfo) -> None:
    if info.list_id is None:
        checks.add("catalog_unavailable", f"trigger {info.id} names no database (list_id): the mapped profile "
                                          "fields were not checked", "warning")  # fmt: skip
        return
    db = info.list_id
    fields = checks.read(f"the fields of database {db}", "the mapped profile fields",
                         lambda: database_fields(checks.client, db))  # fmt: skip
    if fields is None:
        return
    if not fields:
        checks.add("catalog_unavailable", f"database {db} listed no profile fields: the mapped ones were not checked",
                   "warning")  # fmt: skip
        return
    # profile_id is the profile's own id (a matching key), never a database field to create
    known = {f.name for f in fields} | set(SYSTEM_FIELDS) | {PROFILE_ID_FIELD}
    for column, field in plan.mapping.fields.items():
        if field not in known:
            checks.add("unknown_field", f"profile field {field!r} (column {column!r}) is not a field of database {db}"
                       f"{_suggest(field, sorted(known))}: the platform would add it as a new field to every "
                       "profile; fix the mapping, or create the field on the platform first")  # fmt: skip


def _uses(plan: Plan) -> dict[int, list[tuple[str, str]]]:
    """Resource id -> (channel, what uses it) for every resource the mapping names."""
    uses: dict[int, list[tuple[str, str]]] = {}
    for sub in plan.mapping.subscriptions:
        uses.setdefault(int(sub.resource_id), []).append((str(sub.channel), f"the {sub.channel} subscription "
                                                                             f"(column {sub.column!r})"))  # fmt: skip
    if plan.mapping.resource_id is not None:
        needs = plan.mapping.rule.needs
        channel = "email" if needs == "email" else "sms" if needs == "phone" else ""
        uses.setdefault(int(plan.mapping.resource_id), []).append((channel, "the matching (resource_id)"))
    return uses


def _check_resources(checks: _Checks, plan: Plan) -> None:
    listed: list[ResourceInfo] | None = None
    for resource_id, users in sorted(_uses(plan).items()):
        who = " and ".join(what for _, what in users)

        def missing(exc: ApiError, resource_id: int = resource_id, who: str = who) -> None:
            nonlocal listed
            if listed is None:
                listed = checks.read("resources/list", f"resource {resource_id}",
                                     lambda: list_resources(checks.client), listing=True)  # fmt: skip
            if listed is None:
                return
            if any(r.id == resource_id for r in listed):
                checks.add("catalog_unavailable", f"resource {resource_id} is listed but could not be read (error "
                                                  f"{exc.code}): its channels were not checked", "warning")  # fmt: skip
            else:
                ids = ", ".join(str(r.id) for r in listed[:10])
                checks.add("resource_unknown", f"resource {resource_id}, used by {who}, does not exist"
                           + (f" (resources there: {ids})" if ids else ""))  # fmt: skip

        info = checks.read(f"resource {resource_id}", f"resource {resource_id}",
                           functools.partial(get_resource, checks.client, resource_id), missing=missing)  # fmt: skip
        if info is None or info.channels is None:
            continue
        offered = {c.lower() for c in info.channels}
        for channel, what in users:
            accepted = _SAME_CHANNEL.get(channel, {channel}) if channel else set()
            if accepted and not offered & accepted:
                name = f"{resource_id}{f' {info.name!r}' if info.name else ''}"
                checks.add("resource_channel", f"resource {name} has the channel(s) {', '.join(info.channels) or 'none'}:"
                           f" {what} needs {channel!r}; use a resource with that channel")  # fmt: skip


def sample_problem(plan: Plan, client: Any) -> Problem | None:
    """A problem when ``plan`` holds made-up people (the sample) and ``client`` is not the sandbox.

    Example (needs a server)::

        sample_problem(toolkit.plan(toolkit.sample_customers(), mapping, trigger), client)
    """
    reason = plan.test_data
    if reason is None or client.is_sandbox():
        return None
    return Problem("sample_data", f"this plan looks like made-up people, not customers: {reason}. It was about to "
                   f"go to {target_label(client, ask=False)}, which is not the toolkit's sandbox. Rehearse on a "
                   "sandbox, or pass allow_sample=True to client.launch() if you mean it")  # fmt: skip


def raise_for_problems(problems: Iterable[Problem], *, what: str, quiet: bool = False) -> None:
    """Log the warnings (at INFO when ``quiet``: a rehearsal on the sandbox); raise
    :class:`~toolkit.errors.PreflightError` when a problem is an error."""
    problems = list(problems)
    for p in problems:
        if p.severity == "warning":
            log.log(logging.INFO if quiet else logging.WARNING, "preflight: %s", p.message)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        lines = "\n".join(f"- {p.message}" for p in errors)
        raise PreflightError(f"{what} was refused before anything was sent:\n{lines}", problems=problems)
