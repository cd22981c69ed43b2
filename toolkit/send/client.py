"""Client: the platform's API from Python (batches, task status, one profile, launches).

The client sends the exact bytes a :class:`~toolkit.core.plan.Batch` holds and reads the
platform's answers, JSON or XML. Under it:

* :mod:`toolkit.send.transport`: the token, the one HTTP call, answers and errors;
* :mod:`toolkit.send.retry`: :class:`~toolkit.send.retry.RetryPolicy`, what is retried and how
  long to wait, documented by the retry table (a batch whose answer is lost or that got
  HTTP 500 is ``unknown``, never re-sent by itself);
* :mod:`toolkit.send.protocol`: claim in the journal, send, record: for a launch's batches and
  for :meth:`Client.import_and_start` alike;
* :mod:`toolkit.send.launch`: :class:`~toolkit.send.launch.Launch`, a plan's batches sent once.

One token bucket (``rate_limit`` requests per second) paces every request of the client:
sends and polls of all its launches.

The token is held in a wrapper that prints as ``***``; it travels in the
``Authorization: Bearer`` header (or spliced into the body as its first field: with
``token_in_body=True``, or after the platform answered 401 to the header) and is scrubbed
from every error and log message.

Example:
    >>> c = Client("http://127.0.0.1:9", "s3cret-token", journal=":memory:")
    >>> c
    Client('http://127.0.0.1:9', token='***', journal=':memory:')
    >>> "s3cret" in repr(c) + str(vars(c))
    False
    >>> Client("http://127.0.0.1:9", "t0ken-abc", retry=RetryPolicy(max_retries=2)).max_retries
    2
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

import orjson

from toolkit.core import contract
from toolkit.errors import ConfigurationError, InvalidArgumentError, OutcomeUnknown, RequestInfo
from toolkit.send import catalog
from toolkit.send.answers import task_id_of
from toolkit.send.journal import Journal
from toolkit.send.launch import Launch, history_frame, single_body, start_launch
from toolkit.send.preflight import Problem, preflight, raise_for_problems, sample_problem
from toolkit.send.protocol import send_single_once
from toolkit.send.retry import RetryPolicy
from toolkit.send.target import target_label
from toolkit.send.transport import (
    ENV_TOKEN,
    ENV_URL,
    RetryListener,
    Session,
    TaskStatus,
    Transport,
    splice_token,
)

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from toolkit.core.plan import Batch, Plan
    from toolkit.send.events import ProgressCallback

__all__ = ["ENV_TOKEN", "ENV_URL", "Client", "TaskStatus", "splice_token"]


class Client:
    """The platform's API, from Python: batches, task status, one-off sends, launches.

    Args:
        base_url: the platform's address, e.g. ``https://api.example.com`` (a trailing
            ``/api/v1.1`` is accepted and ignored).
        token: the API token. Sent as ``Authorization: Bearer``; never printed.
        journal: where launches are recorded: a path, a :class:`~toolkit.send.journal.Journal`,
            or ``None`` for ``$TOOLKIT_JOURNAL`` or the user's data folder. A relative path
            (``journal="journal.sqlite"``, ``TOOLKIT_JOURNAL=journal.sqlite``) is made absolute
            against the working directory *when the client is made*, so a notebook that
            changes directory afterwards keeps one journal.
        timeout: seconds to wait for an answer (connecting waits at most 10 s).
        max_retries: retries of a failed call that is safe to retry; overrides
            ``retry.max_retries`` when both are given (default 5).
        rate_limit: at most this many requests per second, all launches together.
        token_in_body: ``"auto"`` (default): the ``Authorization`` header first; if the
            platform answers 401 "token required" to it (an older install reads the token
            from the body only, and processed nothing), that request is sent once more with
            the token in the body, and so is every later one of this client. ``True``: always
            in the body (for proxies that strip ``Authorization``); ``False``: always the header.
        retry: the :class:`~toolkit.send.retry.RetryPolicy`: what is retried, how often,
            how long to wait, how task status is polled.
        session: anything with :meth:`requests.Session.post` (proxies, certificates, a
            test's scripted answers); by default the client makes its own. A session given
            here is yours to close.

    The journal knows the platform by :attr:`host`, its canonical name
    (:func:`~toolkit.send.journal.api_host`): ``http://127.0.0.1:8080``,
    ``http://localhost:8080`` and ``http://LOCALHOST.:8080/`` are one platform, so a plan sent
    under one spelling is :class:`~toolkit.errors.AlreadyLaunched` under another.

    Example:
        >>> Client("https://api.example.com/api/v1.1/", "t", journal=":memory:").base_url
        'https://api.example.com'
        >>> Client("http://127.0.0.1:8080", "t", journal=":memory:").host
        'http://localhost:8080'
        >>> import os
        >>> Client("http://h", "t", journal="launches.sqlite").journal_path == os.path.abspath("launches.sqlite")
        True
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        journal: Journal | str | os.PathLike[str] | None = None,
        timeout: float = 30,
        max_retries: int | None = None,
        rate_limit: float | None = None,
        token_in_body: bool | Literal["auto"] = "auto",
        retry: RetryPolicy | None = None,
        session: Session | None = None,
    ) -> None:
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigurationError(
                f"base_url must be an http(s) URL such as https://api.example.com, got {base_url!r}"
            )
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError(f"the API token is empty: set {ENV_TOKEN} or pass token=")
        if timeout <= 0 or (max_retries is not None and max_retries < 0):
            raise InvalidArgumentError("timeout must be > 0 and max_retries >= 0")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentError(
                f"retry= must be a toolkit.send.retry.RetryPolicy, got {type(retry).__name__}"
            )
        if session is not None and not callable(getattr(session, "post", None)):
            raise InvalidArgumentError(
                f"session= must have a post() method like requests.Session, got {type(session).__name__}"
            )
        parts = urlsplit(base_url)
        if parts.username or parts.password:
            raise ConfigurationError(
                "put the token in TOOLKIT_API_TOKEN (token=), not in the URL: URLs end up in logs"
            )
        path = parts.path.rstrip("/")
        if path.endswith(contract.API_PREFIX.rstrip("/")):
            path = path[: -len(contract.API_PREFIX.rstrip("/"))]
        self.base_url = f"{parts.scheme}://{parts.netloc}{path}"
        policy = retry if retry is not None else RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=int(max_retries))
        self.retry = policy
        self.timeout = float(timeout)
        self.rate_limit = rate_limit
        if token_in_body not in ("auto", True, False):
            raise InvalidArgumentError(f"token_in_body must be 'auto', True or False, got {token_in_body!r}")
        self._transport = Transport(
            self.base_url,
            token.strip(),
            session=session,
            timeout=self.timeout,
            retry=policy,
            rate_limit=rate_limit,
            token_in_body=token_in_body,
        )
        self.host = self._transport.host
        if journal is None:
            journal = Journal.default_path()
        elif not isinstance(journal, Journal) and str(journal) != ":memory:":
            if not isinstance(journal, (str, os.PathLike)):
                raise InvalidArgumentError(
                    f"journal= must be a path or a Journal, got {type(journal).__name__}; "
                    "pass e.g. journal='launches.sqlite'"
                )
            journal = os.path.abspath(os.path.expanduser(journal))  # now, not when first opened
        self._journal_arg: Journal | str | os.PathLike[str] = journal
        #: the journal's file (absolute), or ``":memory:"``
        self.journal_path = journal.path if isinstance(journal, Journal) else str(journal)
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A Client from ``TOOLKIT_API_URL``, ``TOOLKIT_API_TOKEN`` (and ``TOOLKIT_JOURNAL``).

        Keyword arguments go to the constructor (``rate_limit=``, ``timeout=``, ...).

        Example:
            >>> import os
            >>> env = {k: os.environ.pop(k, None) for k in (ENV_URL, ENV_TOKEN)}
            >>> try:
            ...     Client.from_env()
            ... except ConfigurationError as e:
            ...     print(e)  # doctest: +ELLIPSIS
            TOOLKIT_API_URL and TOOLKIT_API_TOKEN are not set: export them ... Client(base_url, token)
            >>> os.environ.update({k: v for k, v in env.items() if v is not None})
        """
        url = os.environ.get(ENV_URL, "").strip()
        token = os.environ.get(ENV_TOKEN, "").strip()
        missing = [name for name, value in ((ENV_URL, url), (ENV_TOKEN, token)) if not value]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: export "
                f"{'it' if len(missing) == 1 else 'them'} (e.g. {ENV_URL}=https://api.example.com) "
                "or build Client(base_url, token)"
            )
        if "journal" not in kwargs and os.environ.get("TOOLKIT_JOURNAL"):
            kwargs["journal"] = os.environ["TOOLKIT_JOURNAL"]
        return cls(url, token, **kwargs)

    # --- plumbing ------------------------------------------------------------------------------
    @property
    def sandbox(self) -> bool | None:
        """What the answers so far said: True for the toolkit's sandbox, False for anything
        else, None before any answer (no request is made; :meth:`is_sandbox` asks)."""
        return self._transport.sandbox

    def is_sandbox(self) -> bool:
        """True when this client talks to the toolkit's sandbox (its answers say so in the
        ``X-Toolkit-Sandbox`` header). Asks once, with one small request, if no answer told
        yet; an unreachable host counts as the platform.

        Example (needs a server)::

            client.is_sandbox(), target_label(client)     # (True, 'SANDBOX at 127.0.0.1:8080')
        """
        return self._transport.probe()

    @property
    def target(self) -> str:
        """``"SANDBOX at host:port"`` or ``"PLATFORM at host"`` (see :func:`~toolkit.send.target.target_label`)."""
        return target_label(self)

    @property
    def token_in_body(self) -> bool:
        """True when this client sends the token in the body (asked for, or learned from a 401)."""
        return self._transport.token_in_body

    @property
    def max_retries(self) -> int:
        """Retries of a failed call that is safe to retry (``retry.max_retries``)."""
        return self.retry.max_retries

    @property
    def journal(self) -> Journal:
        """The launch journal (opened on first use)."""
        with self._journal_lock:
            if self._journal is None:
                self._journal = Journal.open(self._journal_arg)
            return self._journal

    def close(self) -> None:
        """Close the HTTP connections (and the journal, if the client opened it)."""
        self._transport.close()
        if self._journal is not None and not isinstance(self._journal_arg, Journal):
            self._journal.close()
            self._journal = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        extra = f", journal={self.journal_path!r}"
        if self.rate_limit:
            extra += f", rate_limit={self.rate_limit:g}"
        return f"Client({self.base_url!r}, token='***'{extra})"

    def __getstate__(self) -> Any:
        raise TypeError("a Client cannot be pickled (it holds a token and open connections)")

    def call(
        self,
        path: str,
        body: bytes,
        *,
        format: contract.Format = "json",
        idempotent: bool,
        list_paths: frozenset[tuple[str, ...]] = frozenset(),
        on_retry: RetryListener | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (without the token) to ``path``; return the parsed answer.

        ``idempotent=False`` (a batch) never re-sends once the request may have reached the
        server; :mod:`toolkit.send.retry` has the full table. Raises an
        :class:`~toolkit.errors.ApiError` subclass for ``error != 0`` (whatever the HTTP
        status), :class:`~toolkit.errors.OutcomeUnknown` when a non-idempotent call may
        have been acted on, :class:`~toolkit.errors.TransportError` when the server could
        not be reached at all. ``on_retry`` is told of each retry before its wait.

        Example (needs a server)::

            client.call(contract.STATUS_PATH, b'{"task_id": "t1"}', idempotent=True)
        """
        return self._transport.call(
            path, body, format=format, idempotent=idempotent, list_paths=list_paths, on_retry=on_retry
        )

    # --- the API calls ----------------------------------------------------------------------------
    def send_batch(self, batch: Batch, *, on_retry: RetryListener | None = None) -> str:
        """Send one batch (its exact bytes) to ``import_and_start_batch_task``; return the task id.

        Never re-sent once it may have reached the platform (see the module docs); most
        callers want :meth:`launch`, which journals each batch around this call.

        Example (needs a server)::

            task_id = client.send_batch(plan.batches[0])
        """
        payload = self.call(
            contract.BATCH_PATH, batch.body, format=batch.format, idempotent=False, on_retry=on_retry
        )
        task_id = task_id_of(payload)  # at the top level or under data: both are documented
        if task_id is None:
            raise OutcomeUnknown(
                "the platform accepted the batch but gave no task_id; check the platform before "
                "re-sending (Launch.resend_unknown())",
                request=RequestInfo("POST", self.base_url + contract.BATCH_PATH),
            )
        return task_id

    def task_status(
        self,
        task_id: str,
        *,
        format: contract.Format = "json",
        on_retry: RetryListener | None = None,
    ) -> TaskStatus:
        """The state of one task (``tasks/status``); safe to call any number of times.

        Example (needs a server, so not run here)::

            client.task_status("1c1a5861-...").progress
        """
        if format == "xml":
            body = contract.dumps_xml({"task_id": task_id, "format": "xml"})
        else:
            body = orjson.dumps({"task_id": task_id})
        payload = self.call(
            contract.STATUS_PATH,
            body,
            format=format,
            idempotent=True,
            list_paths=contract.STATUS_LIST_PATHS,
            on_retry=on_retry,
        )
        return TaskStatus.from_payload(task_id, payload)

    def import_and_start(
        self,
        record_or_row: Any,
        mapping: Any,
        trigger: Any,
        *,
        format: contract.Format = "json",
        force: bool = False,
    ) -> dict[str, Any]:
        """Import one profile and start the trigger for it (``campaigns/triggers/import_and_start``),
        once: a re-run sends nothing and raises.

        ``record_or_row`` is one row of a segment: a dict of column -> value, or a one-row
        frame. It goes through the same validation and encoding as a plan, so the profile
        sent is exactly the one a launch would send. Returns the platform's answer
        (``{"error": 0, "profile_id": ...}``).

        Journalled like a launch's batches: the send is identified by the host, the
        trigger and the sha256 of the exact body (no token in it), and claimed in the
        journal before it goes out, so a re-run cell, a second notebook or a new process
        with the same journal never mails the customer twice:

        * sent before: raises :class:`~toolkit.errors.AlreadyLaunched` (when, and the
          profile id), nothing is sent; ``force=True`` sends again on purpose;
        * earlier answer lost (connection dropped after sending, HTTP 500, a process
          stopped mid-request): raises :class:`~toolkit.errors.OutcomeUnknown`, nothing is
          sent; check on the platform whether the profile was imported, then
          ``force=True`` sends it again if it was not;
        * refused earlier (an :class:`~toolkit.errors.ApiError` such as a wrong token, or
          the platform never reached): not counted as sent, a new call sends it.

        The journal keeps the body's digest, trigger, host, state, times and the ids the
        platform answered with; never the token or the profile's data. Not retried once
        it may have reached the platform (see :mod:`toolkit.send.retry`); use :meth:`launch` for many
        profiles.

        Example (needs a server)::

            row = {"email": "ann@x.io", "name": "Ann"}
            client.import_and_start(row, mapping, Trigger(96))       # {'error': 0, 'profile_id': '...'}
            client.import_and_start(row, mapping, Trigger(96))       # AlreadyLaunched: sent at ...
            client.import_and_start(row, mapping, Trigger(96), force=True)  # sent again, on purpose
        """
        body = single_body(record_or_row, mapping, trigger, format=format)
        return send_single_once(self, body, trigger_id=int(trigger.trigger_id), format=format, force=force)

    # --- the catalog (read-only) ----------------------------------------------------------------------
    def triggers(self) -> list[catalog.TriggerInfo]:
        """Every trigger campaign the token may see: id, name, active, type (``campaigns/triggers/list``).

        Example (needs a server)::

            [t.id for t in client.triggers() if t.is_active and t.is_api_call]
        """
        return catalog.list_triggers(self)

    def trigger(self, trigger_id: int) -> catalog.TriggerInfo:
        """One trigger campaign with its database, resource and channel (``campaigns/triggers/get``).

        Example (needs a server)::

            client.trigger(96).is_active
        """
        return catalog.get_trigger(self, trigger_id)

    def databases(self) -> list[catalog.DatabaseInfo]:
        """Every database the token may see (``databases/list``).

        Example (needs a server)::

            {d.name: d.id for d in client.databases()}
        """
        return catalog.list_databases(self)

    def database_fields(self, database_id: int) -> list[catalog.FieldInfo]:
        """The profile fields of a database (``databases/fields``).

        Example (needs a server)::

            [f.name for f in client.database_fields(client.trigger(96).list_id)]
        """
        return catalog.database_fields(self, database_id)

    def resources(self, *, channels: bool = True) -> list[catalog.ResourceInfo]:
        """Every resource the token may see (``resources/list``), with its channels
        (one ``resources/get`` each) unless ``channels=False``.

        Example (needs a server)::

            {r.id: r.channels for r in client.resources()}
        """
        listed = catalog.list_resources(self)
        return [catalog.get_resource(self, r.id) for r in listed] if channels else listed

    def resource(self, resource_id: int) -> catalog.ResourceInfo:
        """One resource with its channels (``resources/get``).

        Example (needs a server)::

            client.resource(21).channels
        """
        return catalog.get_resource(self, resource_id)

    def preflight(self, plan: Plan, trigger: Any = None) -> list[Problem]:
        """What the platform's catalog shows wrong for ``plan`` before it is sent, in plain
        language: the trigger missing, inactive or not an API-call trigger; a mapped profile
        field not among its database's fields (with "did you mean"); a resource unknown or of
        another channel. A catalog call the token may not make (403) is a ``warning``.
        ``trigger`` (an id or a Trigger) defaults to the plan's. :mod:`toolkit.send.preflight`
        has the list of problems.

        Example (needs a server)::

            [str(p) for p in client.preflight(plan)]   # ["trigger 96 'Welcome' is not active: ..."]
        """
        return preflight(self, plan, trigger)

    def launch(
        self,
        plan: Plan,
        *,
        label: str | None = None,
        force: bool = False,
        concurrency: int = 4,
        progress: bool = True,
        on_progress: ProgressCallback | None = None,
        preflight: bool = True,
        allow_sample: bool = False,
    ) -> Launch:
        """Send a plan's batches (each once, ever) and return the :class:`~toolkit.send.launch.Launch`.

        First, before anything is sent: a plan of made-up people (built from
        :func:`~toolkit.core.sample.sample_customers`, or whose every address is on a domain
        reserved for examples: ``plan.test_data``) is refused with
        :class:`~toolkit.errors.PreflightError` unless the client talks to the toolkit's
        sandbox or ``allow_sample=True``; then :meth:`preflight` reads the catalog and a
        problem raises :class:`~toolkit.errors.PreflightError` (``preflight=False`` skips
        it; its warnings, such as a token without catalog rights, are logged).

        Batches already sent for the same trigger and host (same body digest) are not sent
        again: a plan sent in full raises :class:`~toolkit.errors.AlreadyLaunched` (unless
        ``force=True``); a plan sent in part (a crash, a re-run) sends only the rest.
        Returns once every batch is sent; ``Launch.wait()`` follows the tasks.

        ``on_progress(event)`` is called with a :class:`~toolkit.send.events.LaunchProgress`
        after each batch's state change and each retry scheduled, from the sending threads,
        and once at the end (phase ``done``); an exception in it is logged and ignored.

        Example (needs a server)::

            launch = client.launch(plan, label="spring promo")   # AlreadyLaunched if re-run
            launch.wait().results(join=True)
            client.launch(plan2, on_progress=lambda e: print(f"{e.fraction_sent:.0%}", e.message or ""))
        """
        if not allow_sample and (problem := sample_problem(plan, self)) is not None:
            raise_for_problems([problem], what="this launch")
        if preflight:
            problems = self.preflight(plan)
            raise_for_problems(
                problems, what=f"this launch to {target_label(self, ask=False)}", quiet=self.sandbox is True
            )
        return start_launch(
            self,
            plan,
            label=label,
            force=force,
            concurrency=concurrency,
            progress=progress,
            on_progress=on_progress,
        )

    def resume(self, label: str, *, plan: Plan | None = None) -> Launch:
        """A journalled launch (by label or id), to poll and read without the plan.

        Pass the ``plan`` to also re-send ``unknown`` batches or retry failures.

        Example (needs a server)::

            client.resume("spring promo").wait().summary()
        """
        return Launch.from_journal(self, label, plan=plan)

    @overload
    def history(self, *, kind: Literal["pandas"] = ...) -> pd.DataFrame: ...
    @overload
    def history(self, *, kind: Literal["polars"]) -> pl.DataFrame: ...
    @overload
    def history(self, *, kind: Literal["pandas", "polars"]) -> pd.DataFrame | pl.DataFrame: ...
    def history(self, *, kind: Literal["pandas", "polars"] = "pandas") -> pd.DataFrame | pl.DataFrame:
        """Past launches (newest first) as a frame: label, time, trigger, host, counts, task ids.

        Reads the journal only (no request is made).

        Example:
            >>> Client("https://api.example.com", "t0ken-abc", journal=":memory:").history(kind="polars").height
            0
        """
        return history_frame(self.journal, kind=kind)
