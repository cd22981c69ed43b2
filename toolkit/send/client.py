"""Client: the HTTP side of a launch (auth, retries, rate limit, errors), on one session.

The client sends the exact bytes a :class:`~toolkit.core.plan.Batch` holds and reads the
platform's answers, JSON or XML. What it retries, and why:

============================================  ============  ============================
what happened                                 batch POST    ``tasks/status`` poll
============================================  ============  ============================
connection failed before sending (connect)    retried       retried
HTTP 429 (waits ``Retry-After``)              retried       retried
HTTP 502 / 503 / 504                          retried       retried
answer lost after sending (read timeout,      ``unknown``:  retried (reading a status
connection reset / remote disconnected)       not re-sent   twice is harmless)
HTTP 500                                      ``unknown``:  retried
                                              not re-sent
other 4xx, or ``error != 0``                  raised        raised
============================================  ============  ============================

HTTP 500 to a batch is *not* retried: the server failed somewhere while handling the
request, possibly after creating the task, so sending the batch again could mail its
profiles twice. It is reported as :class:`~toolkit.errors.OutcomeUnknown`, like a lost
answer, and the launch journals the batch as ``unknown`` for the user to decide
(``Launch.resend_unknown()``). A status poll only reads, so every failure there is retried.

Retries use bounded exponential backoff with jitter (``max_retries`` retries, delays
capped at 8 s) and honour ``Retry-After``. One token bucket (``rate_limit`` requests
per second) paces every request of the client: sends and polls of all its launches.

The token is held in a wrapper that prints as ``***``; it travels in the
``Authorization: Bearer`` header (or, with ``token_in_body=True``, spliced into the body
as its first field) and is scrubbed from every error and log message.

Example:
    >>> c = Client("http://127.0.0.1:9", "s3cret-token", journal=":memory:")
    >>> c
    Client('http://127.0.0.1:9', token='***', journal=':memory:')
    >>> "s3cret" in repr(c) + str(vars(c))
    False
    >>> splice_token(b'{"trigger_id":96,"data":[]}', "json", "t0k")
    b'{"token":"t0k","trigger_id":96,"data":[]}'
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as _xml_escape

import orjson
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from toolkit.core import contract
from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    AuthError,
    ConfigurationError,
    InvalidArgumentError,
    OutcomeUnknown,
    RateLimited,
    RequestInfo,
    RequestTooLarge,
    ResponseInfo,
    TransportError,
)
from toolkit.send.journal import Journal, SingleRecord, api_host
from toolkit.send.retry import Backoff, RetryNotice, TokenBucket, parse_retry_after

if TYPE_CHECKING:
    from toolkit.core.plan import Batch, Plan
    from toolkit.send.events import ProgressCallback
    from toolkit.send.launch import Launch

__all__ = ["ENV_TOKEN", "ENV_URL", "Client", "TaskStatus", "splice_token"]

log = logging.getLogger("toolkit.send.client")

ENV_URL: Final = "TOOLKIT_API_URL"
ENV_TOKEN: Final = "TOOLKIT_API_TOKEN"

#: HTTP statuses retried for every call: the server said "not now", nothing was done.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_EXCERPT = 300


class _Secret:
    """A string that never prints: repr/str give ``***`` (so do ``vars()`` and tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would write the token to disk: refuse
        raise TypeError("a Client's token cannot be pickled; build the Client again from the environment")


def splice_token(body: bytes, fmt: str, token: str) -> bytes:
    """``body`` with the token as its first field, the rest of the bytes untouched.

    The rows are never decoded and re-encoded: the bytes that were planned (and whose
    digest the journal keeps) are the bytes that go out, plus the token.

    Example:
        >>> splice_token(b"<xml>\\n<trigger_id>96</trigger_id>\\n</xml>\\n", "xml", "a<b")
        b'<xml>\\n<token>a&lt;b</token>\\n<trigger_id>96</trigger_id>\\n</xml>\\n'
        >>> splice_token(b"{}", "json", "t")
        b'{"token":"t"}'
    """
    if fmt == "xml":
        start = 0
        while True:  # skip an XML declaration, processing instructions and comments
            start = body.index(b"<", start)
            if body[start : start + 2] not in (b"<?", b"<!"):
                break
            start = body.index(b">", start) + 1
        end = body.index(b">", start)
        element = b"<token>" + _xml_escape(token).encode("utf-8") + b"</token>"
        if body[end - 1 : end] == b"/":  # <xml/>: an empty root
            name = body[start + 1 : end - 1].strip()
            return body[:start] + b"<" + name + b">" + element + b"</" + name + b">" + body[end + 1 :]
        newline = b"\n" if body[end + 1 : end + 2] == b"\n" else b""
        return body[: end + 1] + newline + element + body[end + 1 :]
    brace = body.index(b"{")
    rest = body[brace + 1 :]
    separator = b"" if rest.lstrip()[:1] == b"}" else b","
    return body[: brace + 1] + b'"token":' + orjson.dumps(token) + separator + rest


@dataclass(frozen=True)
class TaskStatus:
    """One answer of ``tasks/status``, read tolerantly.

    ``status`` is the platform's raw state (unknown states are kept as they are);
    ``results`` the per-profile outcomes in input order when the platform gives them.

    Example:
        >>> s = TaskStatus.from_payload("t1", {"data": {"status": "success", "progress": "100",
        ...     "result": {"result": [{"profile_id": "p1"}, {"error": "400", "error_text": "bad"}]}}})
        >>> s.done, s.progress, s.results
        (True, 100.0, [{'profile_id': 'p1'}, {'error': 400, 'error_text': 'bad'}])
    """

    task_id: str
    status: str
    progress: float
    results: list[dict[str, Any]] | None = None
    errors: list[Any] | None = None
    result: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status.lower() in contract.DONE_STATES

    @property
    def failed(self) -> bool:
        return self.status.lower() in contract.FAILED_STATES

    @property
    def finished(self) -> bool:
        return self.done or self.failed

    @classmethod
    def from_payload(cls, task_id: str, payload: Mapping[str, Any]) -> TaskStatus:
        data = payload.get("data")
        data = data if isinstance(data, Mapping) else {}
        status = str(data.get("status") or "").strip()
        try:
            progress = min(100.0, max(0.0, float(data.get("progress") or 0)))
        except (TypeError, ValueError):
            progress = 0.0
        raw = data.get("result")
        result: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
        items = raw if isinstance(raw, list) else result.get("result")
        results = None
        if isinstance(items, list):
            results = [_profile_result(item) for item in items]
        errors = result.get("errors")
        return cls(
            task_id=task_id,
            status=status,
            progress=progress,
            results=results,
            errors=errors if isinstance(errors, list) else None,
            result=result,
        )


def _profile_result(item: Any) -> dict[str, Any]:
    """One per-profile outcome with its error code as an int (XML gives strings)."""
    if not isinstance(item, Mapping):
        return {"profile_id": str(item)} if item not in (None, "") else {}
    out = dict(item)
    if "error" in out:
        with contextlib.suppress(TypeError, ValueError):
            out["error"] = int(out["error"])
    return out


class Client:
    """The platform's API, from Python: batches, task status, one-off sends, launches.

    Args:
        base_url: the platform's address, e.g. ``https://api.example.com`` (a trailing
            ``/api/v1.1`` is accepted and ignored).
        token: the API token. Sent as ``Authorization: Bearer``; never printed.
        journal: where launches are recorded: a path, a :class:`~toolkit.send.journal.Journal`,
            or ``None`` for ``$TOOLKIT_JOURNAL`` or the user's data folder.
        timeout: seconds to wait for an answer (connecting waits at most 10 s).
        max_retries: retries of a failed call that is safe to retry (see module docs).
        rate_limit: at most this many requests per second, all launches together.
        token_in_body: put the token in the body instead of the header (for proxies
            that strip ``Authorization``).

    Example:
        >>> Client("https://api.example.com/api/v1.1/", "t", journal=":memory:").base_url
        'https://api.example.com'
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        journal: Journal | str | os.PathLike[str] | None = None,
        timeout: float = 30,
        max_retries: int = 5,
        rate_limit: float | None = None,
        token_in_body: bool = False,
    ) -> None:
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigurationError(
                f"base_url must be an http(s) URL such as https://api.example.com, got {base_url!r}"
            )
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError(f"the API token is empty: set {ENV_TOKEN} or pass token=")
        if timeout <= 0 or max_retries < 0:
            raise InvalidArgumentError("timeout must be > 0 and max_retries >= 0")
        parts = urlsplit(base_url)
        if parts.username or parts.password:
            raise ConfigurationError(
                "put the token in TOOLKIT_API_TOKEN (token=), not in the URL: URLs end up in logs"
            )
        path = parts.path.rstrip("/")
        if path.endswith(contract.API_PREFIX.rstrip("/")):
            path = path[: -len(contract.API_PREFIX.rstrip("/"))]
        self.base_url = f"{parts.scheme}://{parts.netloc}{path}"
        self.host = api_host(base_url)
        self._token = _Secret(token.strip())
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.rate_limit = rate_limit
        self.token_in_body = bool(token_in_body)
        self._limiter = TokenBucket(rate_limit) if rate_limit else None
        self._backoff = Backoff()
        self._session = requests.Session()
        # Retries are ours (they depend on what was sent): the adapter never retries.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        from toolkit._version import __version__

        self._session.headers["User-Agent"] = f"toolkit/{__version__}"
        self._journal_arg = journal
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
    def journal(self) -> Journal:
        """The launch journal (opened on first use)."""
        with self._journal_lock:
            if self._journal is None:
                self._journal = Journal.open(self._journal_arg)
            return self._journal

    def close(self) -> None:
        """Close the HTTP connections (and the journal, if the client opened it)."""
        self._session.close()
        if self._journal is not None and not isinstance(self._journal_arg, Journal):
            self._journal.close()
            self._journal = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        journal = self._journal_arg.path if isinstance(self._journal_arg, Journal) else self._journal_arg
        extra = f", journal={str(journal)!r}" if journal is not None else ""
        if self.rate_limit:
            extra += f", rate_limit={self.rate_limit:g}"
        return f"Client({self.base_url!r}, token='***'{extra})"

    def __getstate__(self) -> Any:
        raise TypeError("a Client cannot be pickled (it holds a token and open connections)")

    def _scrub(self, text: str) -> str:
        """Text with the token replaced by ``***`` (a server may echo a request back).

        A token under 8 characters is not a credential worth the mangled messages (a token
        ``t`` would star every ``t``): such toy tokens only exist in tests.
        """
        token = self._token.reveal()
        return text.replace(token, "***") if len(token) >= 8 else text

    def _parse(
        self, response: requests.Response, list_paths: frozenset[tuple[str, ...]]
    ) -> dict[str, Any] | None:
        content = response.content
        kind = response.headers.get("Content-Type", "")
        try:
            if "xml" in kind or content.lstrip()[:1] == b"<":
                payload: Any = contract.loads_xml(content, list_paths)
            else:
                payload = orjson.loads(content)
        except Exception:  # any malformed body: the caller falls back to the HTTP status
            return None
        return payload if isinstance(payload, dict) else None

    def _api_error(
        self,
        status: int,
        payload: dict[str, Any] | None,
        request: RequestInfo,
        excerpt: str,
        retry_after: float | None,
    ) -> ApiError:
        """The right ApiError for an answer, with a hint on what to do."""
        if payload is not None and "error" in payload:
            try:
                code = int(payload["error"])
            except (TypeError, ValueError):
                code = status
            text = self._scrub(str(payload.get("error_text") or ""))
            debug = payload.get("error_debug")
            debug = self._scrub(str(debug)) if debug not in (None, "") else None
        else:
            code, text, debug = (
                status,
                requests.status_codes._codes.get(status, ("",))[0].replace("_", " "),
                None,
            )
        response = ResponseInfo(status, excerpt)
        kwargs: dict[str, Any] = {"request": request, "response": response}
        blob = f"{text} {debug or ''}".lower()
        err: ApiError
        if code in (401, 403) or status in (401, 403):
            err = AuthError(code, text, debug, **kwargs)
            hint = f"the platform refused the token: check {ENV_TOKEN} (or the token given to Client)"
        elif code == 429 or status == 429:
            err = RateLimited(code, text, debug, retry_after=retry_after, **kwargs)
            hint = "too many requests: lower rate_limit= or concurrency="
        elif status == 413 or (code == 400 and "too large" in blob):
            err = RequestTooLarge(code, text, debug, **kwargs)
            hint = "the body is over the platform's limit: plan with a smaller max_bytes= or max_rows="
        else:
            err = ApiError(code, text, debug, **kwargs)
            hint = ""
        if hint:
            err.message += f"; {hint}"
            err.args = (err.message,)
        return err

    def call(
        self,
        path: str,
        body: bytes,
        *,
        format: contract.Format = "json",
        idempotent: bool,
        list_paths: frozenset[tuple[str, ...]] = frozenset(),
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> dict[str, Any]:
        """POST ``body`` (without the token) to ``path``; return the parsed answer.

        ``idempotent=False`` (a batch) never re-sends once the request may have reached the
        server; see the module docs for the full rules. Raises an
        :class:`~toolkit.errors.ApiError` subclass for ``error != 0`` (whatever the HTTP
        status), :class:`~toolkit.errors.OutcomeUnknown` when a non-idempotent call may
        have been acted on, :class:`~toolkit.errors.TransportError` when the server could
        not be reached at all. ``on_retry`` is told of each retry before its wait.
        """
        url = self.base_url + path
        request = RequestInfo("POST", url)
        content_type = "application/xml" if format == "xml" else "application/json"
        headers = {"Content-Type": content_type, "Accept": f"{content_type}, application/json;q=0.5"}
        if self.token_in_body:
            body = splice_token(body, format, self._token.reveal())
        else:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        connect_timeout = min(10.0, self.timeout)
        attempt = 0
        while True:
            if self._limiter is not None:
                self._limiter.acquire()
            started = time.monotonic()
            try:
                response = self._session.post(
                    url, data=body, headers=headers, timeout=(connect_timeout, self.timeout)
                )
            except requests.RequestException as exc:
                reason = self._scrub(f"{type(exc).__name__}: {_short(exc)}")
                never_sent = _never_sent(exc)
                if not never_sent and not idempotent:
                    raise OutcomeUnknown(
                        f"the request to {path} was sent but its answer was lost ({reason}); the platform "
                        "may have it, so it is not re-sent automatically: check the platform, then "
                        "Launch.resend_unknown() sends it again if needed",
                        request=request,
                    ) from exc
                if attempt >= self.max_retries:
                    raise TransportError(
                        f"could not reach {self.host} after {attempt + 1} attempt(s) ({reason}); check "
                        f"{ENV_URL}, the network, and that the platform is up",
                        request=request,
                    ) from exc
                delay = self._backoff.delay(attempt)
                log.warning(
                    "POST %s: %s; retrying in %.2f s (retry %d of %d)", path, reason, delay, attempt + 1,
                    self.max_retries,
                )  # fmt: skip
                what = "the platform is not answering" if never_sent else "the platform's answer was lost"
                if on_retry is not None:
                    on_retry(RetryNotice(what, attempt + 1, self.max_retries, delay))
                time.sleep(delay)
                attempt += 1
                continue

            status = response.status_code
            elapsed = (time.monotonic() - started) * 1000
            log.debug("POST %s -> HTTP %d in %.0f ms (attempt %d)", path, status, elapsed, attempt + 1)
            payload = self._parse(response, list_paths)
            excerpt = self._scrub(response.text[:_EXCERPT]) if payload is None or status >= 400 else ""
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error_code = _error_code(payload)
            retryable = status in RETRY_STATUSES or error_code == 429 or (status >= 500 and idempotent)
            if status == 500 and not idempotent:
                err = self._api_error(status, payload, request, excerpt, retry_after)
                raise OutcomeUnknown(
                    f"the platform answered HTTP 500 to {path} ({err.text or 'internal error'}): it may have "
                    "accepted the request before failing, so it is not re-sent automatically; check the "
                    "platform, then Launch.resend_unknown() sends it again if needed",
                    request=request,
                    response=ResponseInfo(status, excerpt),
                )
            if retryable:
                if attempt < self.max_retries:
                    delay = self._backoff.delay(attempt, retry_after if status in (429, 503) else None)
                    log.warning(
                        "POST %s: HTTP %d; retrying in %.2f s (retry %d of %d)", path, status, delay,
                        attempt + 1, self.max_retries,
                    )  # fmt: skip
                    if on_retry is not None:
                        what = f"the platform is busy (HTTP {status})"
                        on_retry(RetryNotice(what, attempt + 1, self.max_retries, delay))
                    time.sleep(delay)
                    attempt += 1
                    continue
                raise self._api_error(status, payload, request, excerpt, retry_after)
            if status >= 400 or error_code not in (None, 0) or payload is None:
                if payload is None and status < 400:
                    raise ApiError(
                        status,
                        "unreadable answer",
                        f"not JSON or XML: {excerpt[:120]!r}",
                        request=request,
                        response=ResponseInfo(status, excerpt),
                    )
                raise self._api_error(status, payload, request, excerpt, retry_after)
            return payload

    # --- the API calls ----------------------------------------------------------------------------
    def send_batch(self, batch: Batch, *, on_retry: Callable[[RetryNotice], None] | None = None) -> str:
        """Send one batch (its exact bytes) to ``import_and_start_batch_task``; return the task id.

        Never re-sent once it may have reached the platform (see the module docs); most
        callers want :meth:`launch`, which journals each batch around this call.

        Example (needs a server)::

            task_id = client.send_batch(plan.batches[0])
        """
        payload = self.call(
            contract.BATCH_PATH, batch.body, format=batch.format, idempotent=False, on_retry=on_retry
        )
        task_id = payload.get("task_id")
        if not task_id:
            raise OutcomeUnknown(
                "the platform accepted the batch but gave no task_id; check the platform before "
                "re-sending (Launch.resend_unknown())",
                request=RequestInfo("POST", self.base_url + contract.BATCH_PATH),
            )
        return str(task_id)

    def task_status(
        self,
        task_id: str,
        *,
        format: contract.Format = "json",
        on_retry: Callable[[RetryNotice], None] | None = None,
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
        it may have reached the platform (see the module docs); use :meth:`launch` for many
        profiles.

        Example (needs a server)::

            row = {"email": "ann@x.io", "name": "Ann"}
            client.import_and_start(row, mapping, Trigger(96))       # {'error': 0, 'profile_id': '...'}
            client.import_and_start(row, mapping, Trigger(96))       # AlreadyLaunched: sent at ...
            client.import_and_start(row, mapping, Trigger(96), force=True)  # sent again, on purpose
        """
        from toolkit.send.launch import single_body

        body = single_body(record_or_row, mapping, trigger, format=format)
        trigger_id = int(trigger.trigger_id)
        digest = hashlib.sha256(body).hexdigest()
        journal = self.journal
        record, claimed = journal.claim_single(
            host=self.host, trigger_id=trigger_id, digest=digest, format=format, force=force
        )
        if not claimed:
            if record.state == "sent":
                raise AlreadyLaunched(_single_sent_message(record), previous=record)
            raise OutcomeUnknown(
                _single_unknown_message(record),
                request=RequestInfo("POST", self.base_url + contract.SINGLE_PATH),
            )
        send_id = record.send_id
        try:
            payload = self.call(contract.SINGLE_PATH, body, format=format, idempotent=False)
        except OutcomeUnknown as exc:
            reason = _unknown_reason(exc)
            journal.mark_single_unknown(send_id, reason)
            raise OutcomeUnknown(
                f"import_and_start to trigger {trigger_id} on {self.host}: {reason}; the platform may have "
                "imported the profile and started the trigger, so it is journalled as unknown and never "
                "re-sent by itself: check the platform, then call import_and_start(..., force=True) to "
                "send it again if it was not imported",
                request=exc.request,
                response=exc.response,
            ) from exc
        except ApiError as exc:
            journal.mark_single_failed(
                send_id, f"{type(exc).__name__}: refused by the platform", code=exc.code
            )
            raise
        except TransportError:  # never reached the platform (OutcomeUnknown is above)
            journal.mark_single_failed(send_id, "TransportError: never delivered")
            raise
        except BaseException as exc:
            # anything unexpected once claimed (Ctrl-C, a bug): the request may have gone out
            journal.mark_single_unknown(send_id, f"interrupted while sending ({type(exc).__name__})")
            raise
        profile_id, task_id = payload.get("profile_id"), payload.get("task_id")
        journal.mark_single_sent(
            send_id,
            profile_id=None if profile_id in (None, "") else str(profile_id),
            task_id=None if task_id in (None, "") else str(task_id),
        )
        return payload

    def launch(
        self,
        plan: Plan,
        *,
        label: str | None = None,
        force: bool = False,
        concurrency: int = 4,
        progress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> Launch:
        """Send a plan's batches (each once, ever) and return the :class:`~toolkit.send.launch.Launch`.

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
        from toolkit.send.launch import start_launch

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
        from toolkit.send.launch import Launch

        return Launch.from_journal(self, label, plan=plan)

    def history(self, *, kind: Literal["pandas", "polars"] = "pandas") -> Any:
        """Past launches (newest first) as a frame: label, time, trigger, host, counts, task ids.

        Reads the journal only (no request is made).

        Example:
            >>> Client("https://api.example.com", "t0ken-abc", journal=":memory:").history(kind="polars").height
            0
        """
        from toolkit.send.launch import history_frame

        return history_frame(self.journal, kind=kind)


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
    if record.state == "sending":
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
    if exc.response is not None and exc.response.status_code >= 500:
        return f"the platform answered HTTP {exc.response.status_code}"
    cause = exc.__cause__
    if cause is not None:
        return f"its answer was lost ({type(cause).__name__})"
    return "its answer was lost"


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _error_code(payload: dict[str, Any] | None) -> int | None:
    if payload is None or "error" not in payload:
        return None
    try:
        return int(payload["error"])
    except (TypeError, ValueError):
        return None


def _never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never left: the connection was not made.

    A refused or timed-out *connect* (and a failed DNS lookup) happens before any byte
    of the request is written. Anything else (read timeout, reset, remote disconnect)
    may come after the server got the whole request.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(
            current, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        ):
            return True
        if isinstance(current, ConnectionRefusedError):
            return True
        stack.extend([current.__cause__, current.__context__])
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False
