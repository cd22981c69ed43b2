"""The HTTP transport under :class:`~toolkit.send.client.Client`: the token, the one POST, the
answer read (JSON or XML), errors mapped to the toolkit's, retries by :class:`RetryPolicy`.

The token is held in a wrapper that prints as ``***``. It travels in the ``Authorization:
Bearer`` header, added by a requests auth hook when the request is prepared as a string
whose ``repr`` is ``'Bearer ***'`` (so a traceback that prints locals, or a dict of the
headers, shows no token), or, with ``token_in_body=True``, spliced into the body as its
first field. No frame of the toolkit holds it in a plain local; the frames of requests,
urllib3 and http.client that did are cut from a failed call's chained exceptions. It is
scrubbed from every error and log message before anything is shortened.

Requests go through ``session.post`` of any object shaped like :class:`requests.Session`
(``Transport(..., session=...)``), so a test can script the platform's answers.

Example:
    >>> t = Transport("http://127.0.0.1:9", "s3cret-token")
    >>> t
    Transport('http://127.0.0.1:9', token='***')
    >>> "s3cret" in repr(t) + str(vars(t))
    False
    >>> splice_token(b'{"trigger_id":96,"data":[]}', "json", "t0k")
    b'{"token":"t0k","trigger_id":96,"data":[]}'
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol
from xml.sax.saxutils import escape as _xml_escape

import orjson
import requests
import requests.auth
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from toolkit._version import __version__
from toolkit.core import contract
from toolkit.errors import (
    ApiError,
    AuthError,
    ConfigurationError,
    OutcomeUnknown,
    RateLimited,
    RequestInfo,
    RequestTooLarge,
    ResponseInfo,
    TransportError,
)
from toolkit.send.journal import api_host
from toolkit.send.retry import (
    Failure,
    RetryNotice,
    RetryPolicy,
    TokenBucket,
    Verdict,
    classify_answer,
    parse_retry_after,
    unknown_reason,
)

__all__ = ["ENV_TOKEN", "ENV_URL", "RetryListener", "Session", "TaskStatus", "Transport", "splice_token"]

log = logging.getLogger("toolkit.send.transport")

ENV_URL: Final = "TOOLKIT_API_URL"
ENV_TOKEN: Final = "TOOLKIT_API_TOKEN"

#: Characters of an answer kept in an error (after the token is scrubbed from the whole answer).
_EXCERPT = 300

RetryListener = Callable[[RetryNotice], None]
"""Told of each retry before its wait (``on_retry=``)."""


class Session(Protocol):
    """What the transport needs of a session: :meth:`requests.Session.post` and ``close``."""

    def post(
        self,
        url: str,
        data: bytes | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
        auth: requests.auth.AuthBase | None = None,
    ) -> requests.Response: ...

    def close(self) -> None: ...


class _Secret:
    """A string that never prints: repr/str give ``***`` (so do ``vars()`` and tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the secret replaced by ``***`` (a secret under 8 characters is a toy:
        starring every ``t`` of a message for a token ``t`` would only mangle it)."""
        return text.replace(self._value, "***") if len(self._value) >= 8 else text

    def scrub_bytes(self, data: bytes) -> bytes:
        """:meth:`scrub` for bytes (an answer as it came off the wire)."""
        return data.replace(self._value.encode("utf-8"), b"***") if len(self._value) >= 8 else data

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pickling would write the token to disk: refuse
        raise TypeError("a Client's token cannot be pickled; build the Client again from the environment")


class _HeaderValue(str):
    """The ``Authorization`` header's value: a string (what http.client writes out), whose
    ``repr`` hides it, so the headers dict printed in a traceback's locals shows no token.

    Example:
        >>> value = _HeaderValue("Bearer s3cret-token")
        >>> repr({"Authorization": value}), value.encode("latin-1")
        ("{'Authorization': 'Bearer ***'}", b'Bearer s3cret-token')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer ***'"

    def __reduce__(self) -> Any:
        raise TypeError("an Authorization header cannot be pickled")


class _BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>`` as requests prepares the request, so the header
    never sits in a local variable of the toolkit's frames."""

    def __init__(self, token: _Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = _HeaderValue("Bearer " + self._token.reveal())
        return request

    def __repr__(self) -> str:
        return "_BearerAuth('***')"


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
    code = item.get("error")
    if code is None or type(code) is int:
        # the usual JSON answer: nothing to convert, and the dict is this answer's own (just
        # parsed): kept as it is, not copied (a task's 10,000 results are read in one go)
        return item if type(item) is dict else dict(item)
    out = dict(item)
    with contextlib.suppress(TypeError, ValueError):
        out["error"] = int(code)
    return out


def _default_session() -> requests.Session:
    session = requests.Session()
    # Retries are the policy's (they depend on what was sent): the adapter never retries.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """POSTs to one platform with one token, under one retry policy and one rate limit.

    Args:
        base_url: the platform's address without the API prefix (``https://api.example.com``).
        token: the API token (kept wrapped, never printed).
        session: anything with :meth:`requests.Session.post`; by default a new session
            whose adapter never retries (the policy does). A session given here is the
            caller's to close.
        timeout: seconds to wait for an answer (connecting waits at most 10 s).
        retry: the :class:`~toolkit.send.retry.RetryPolicy`.
        rate_limit: at most this many requests per second, all threads together.
        token_in_body: ``"auto"`` (default): the header first; a 401 "token required" to a
            request sent with the header (nothing was processed) sends that request once more
            with the token in the body, and every later one too (an install of the older
            revision reads the body only). ``True`` / ``False``: always the body / the header.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: Session | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        token_in_body: bool | Literal["auto"] = "auto",
    ) -> None:
        if token_in_body not in ("auto", True, False):
            raise ValueError(f"token_in_body must be 'auto', True or False, got {token_in_body!r}")
        self.base_url = base_url
        self.host = api_host(base_url)
        if not token_in_body and not (token.isascii() and token.isprintable() and " " not in token):
            # a header value with a newline or a space would be refused by http.client, with the
            # header (the token) quoted in its error: refuse it here, without quoting it
            raise ConfigurationError(
                f"the API token has a space, a line break or a non-ASCII character (a copy-paste accident?): "
                f"check {ENV_TOKEN}; it is sent in an HTTP header, which cannot carry those"
            )
        self._token = _Secret(token)
        self._auth = _BearerAuth(self._token)
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        #: the token goes in the body now (``"auto"`` starts in the header and may switch, once)
        self.token_in_body = token_in_body is True
        self._adapts = token_in_body == "auto"
        #: True / False once an answer said whether the other end is the toolkit's sandbox
        self.sandbox: bool | None = None
        self._probed = False
        self._probe_lock = threading.Lock()
        self._limiter = TokenBucket(rate_limit) if rate_limit else None
        self._owns_session = session is None
        self._session: Session = session if session is not None else _default_session()

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r}, token='***')"

    def __getstate__(self) -> Any:
        raise TypeError("a Client cannot be pickled (it holds a token and open connections)")

    def close(self) -> None:
        """Close the connections of a session the transport made (a given one is the caller's)."""
        if self._owns_session:
            self._session.close()

    def scrub(self, text: str) -> str:
        """Text with the token replaced by ``***`` (a server may echo a request back).

        A token under 8 characters is not a credential worth the mangled messages (a token
        ``t`` would star every ``t``): such toy tokens only exist in tests.

        Example:
            >>> Transport("http://h", "abcdefgh12").scrub("echo: Bearer abcdefgh12")
            'echo: Bearer ***'
        """
        return self._token.scrub(text)

    # --- one call -------------------------------------------------------------------------------
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

        What is retried, and what is raised, follows the policy's table (see
        :mod:`toolkit.send.retry`): an :class:`~toolkit.errors.ApiError` subclass for a
        refusal (``error != 0`` whatever the HTTP status), :class:`~toolkit.errors.OutcomeUnknown`
        when a non-idempotent call may have been acted on, :class:`~toolkit.errors.TransportError`
        when the platform could not be reached. ``on_retry`` is told of each retry before its wait.
        """
        url = self.base_url + path
        request = RequestInfo("POST", url)
        content_type = "application/xml" if format == "xml" else "application/json"
        headers = {
            "Content-Type": content_type,
            "Accept": f"{content_type}, application/json;q=0.5",
            "User-Agent": f"toolkit/{__version__}",
        }
        attempt = 0
        while True:
            if self._limiter is not None:
                self._limiter.acquire()
            started = time.monotonic()
            in_body = self.token_in_body
            try:
                response = self._post(url, body, format, headers, in_body=in_body)
            except requests.RequestException as exc:
                _cut_frames(exc)  # their locals hold the request's headers and body: the token
                failure = Failure.CONNECT if _never_sent(exc) else Failure.ANSWER_LOST
                reason = _short(self.scrub(f"{type(exc).__name__}: {exc}"))  # scrubbed, then shortened
                verdict = self.retry.decide(failure, idempotent=idempotent, attempt=attempt)
                if verdict is Verdict.RETRY:
                    self._wait(path, failure, reason, attempt, None, None, on_retry)
                    attempt += 1
                    continue
                raise self._transport_error(path, failure, verdict, reason, attempt, request) from exc

            status = response.status_code
            log.debug(
                "POST %s -> HTTP %d in %.0f ms (attempt %d)", path, status,
                (time.monotonic() - started) * 1000, attempt + 1,
            )  # fmt: skip
            self._note_sandbox(response)
            # scrubbed as it arrives: a server echoing the request back must not put the token in a
            # local variable (payload) or a message; the excerpt is cut after scrubbing
            content = self._token.scrub_bytes(response.content)
            payload = self._parse(content, response.headers.get("Content-Type", ""), list_paths)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            refusal = classify_answer(
                status,
                _error_code(payload),
                readable=payload is not None,
                retry_after=retry_after is not None,
            )
            if refusal is None:
                assert payload is not None
                return payload
            if self._adapts and not in_body and 401 in (status, _error_code(payload)):
                # "token required" with the header: an older install reads the body only. Nothing
                # was processed (the token is checked first), so the same request goes once more.
                log.info(
                    "POST %s: HTTP 401 with the Authorization header; the token goes in the body from now on",
                    path,
                )
                self.token_in_body, self._adapts = True, False
                continue
            failure = refusal
            verdict = self.retry.decide(failure, idempotent=idempotent, attempt=attempt)
            if verdict is Verdict.RETRY:
                self._wait(path, failure, f"HTTP {status}", attempt, status, retry_after, on_retry)
                attempt += 1
                continue
            excerpt = content.decode(response.encoding or "utf-8", errors="replace")[:_EXCERPT]
            error = self._api_error(status, payload, request, excerpt, retry_after)
            if verdict is Verdict.UNKNOWN:
                raise OutcomeUnknown(
                    f"POST {path}: {unknown_reason(failure, status)} ({error.text or 'no reason given'}), so it "
                    "is not re-sent automatically; check the platform, then Launch.resend_unknown() sends it "
                    "again if needed",
                    request=request,
                    response=ResponseInfo(status, excerpt),
                )
            if failure is Failure.UNREADABLE:
                raise ApiError(
                    status,
                    "unreadable answer",
                    f"not JSON or XML: {excerpt[:120]!r}",
                    request=request,
                    response=ResponseInfo(status, excerpt),
                )
            raise error

    def _note_sandbox(self, response: requests.Response) -> None:
        """Learn from an answer whether the other end is the toolkit's sandbox."""
        self.sandbox = response.headers.get(contract.SANDBOX_HEADER, "").strip() == "1"

    def probe(self) -> bool:
        """Whether the other end is the toolkit's sandbox, asked once if no answer told yet.

        One harmless request, never retried: an empty POST to the server's root, outside the
        API and without the token (the sandbox marks every answer, even a 404). An unreachable
        or silent host counts as *not* a sandbox, the safe side.
        """
        with self._probe_lock:  # two launches at once ask once, and both wait for the answer
            if self.sandbox is None and not self._probed:
                self._probed = True  # asked once: a host that did not answer is not asked on every label
                wait = min(5.0, self.timeout)
                headers = {"User-Agent": f"toolkit/{__version__}"}
                try:
                    self._note_sandbox(
                        self._session.post(self.base_url + "/", b"", headers=headers, timeout=(wait, wait))
                    )
                except requests.RequestException as exc:
                    log.info("could not ask %s whether it is a sandbox (%s): taken as the platform", self.host,
                             type(exc).__name__)  # fmt: skip
                    return False
        return bool(self.sandbox)

    def _post(
        self, url: str, body: bytes, format: str, headers: dict[str, str], *, in_body: bool
    ) -> requests.Response:
        """One POST. The token is added by the auth hook, or spliced into the bytes passed
        straight to ``post``: no local variable here holds it."""
        timeout = (min(10.0, self.timeout), self.timeout)
        if in_body:
            return self._session.post(
                url, data=splice_token(body, format, self._token.reveal()), headers=headers, timeout=timeout
            )
        return self._session.post(url, data=body, headers=headers, timeout=timeout, auth=self._auth)

    def _wait(
        self,
        path: str,
        failure: Failure,
        reason: str,
        attempt: int,
        status: int | None,
        retry_after: float | None,
        on_retry: RetryListener | None,
    ) -> None:
        delay = self.retry.delay(attempt, retry_after, failure)
        log.warning(
            "POST %s: %s; retrying in %.2f s (retry %d of %d)", path, reason, delay, attempt + 1,
            self.retry.max_retries,
        )  # fmt: skip
        if on_retry is not None:
            on_retry(self.retry.notice(failure, attempt, delay, status))
        time.sleep(delay)

    def _transport_error(
        self, path: str, failure: Failure, verdict: Verdict, reason: str, attempt: int, request: RequestInfo
    ) -> TransportError:
        if verdict is Verdict.UNKNOWN:
            return OutcomeUnknown(
                f"POST {path}: {unknown_reason(failure)} ({reason}); the platform may have it, so it is not "
                "re-sent automatically: check the platform, then Launch.resend_unknown() sends it again if needed",
                request=request,
            )
        return TransportError(
            f"could not reach {self.host} after {attempt + 1} attempt(s) ({reason}); check {ENV_URL}, the "
            "network, and that the platform is up",
            request=request,
        )

    # --- answers ------------------------------------------------------------------------------
    @staticmethod
    def _parse(content: bytes, kind: str, list_paths: frozenset[tuple[str, ...]]) -> dict[str, Any] | None:
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
            text = self.scrub(str(payload.get("error_text") or ""))
            debug = payload.get("error_debug")
            debug = self.scrub(str(debug)) if debug not in (None, "") else None
        else:
            # requests' table of reason names ("not_found"); types-requests leaves private names out
            names = requests.status_codes._codes  # type: ignore[attr-defined]
            code, text, debug = status, names.get(status, ("",))[0].replace("_", " "), None
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


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _error_code(payload: dict[str, Any] | None) -> int | None:
    if payload is None or "error" not in payload:
        return None
    try:
        return int(payload["error"])
    except (TypeError, ValueError):
        return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it carries: causes, contexts, and those in its ``args`` or
    ``reason`` (urllib3 wraps the socket error there), each once."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(
            [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        )


def _never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never left: the connection was not made.

    A refused or timed-out *connect* (and a failed DNS lookup) happens before any byte
    of the request is written. Anything else (read timeout, reset, remote disconnect)
    may come after the server got the whole request.
    """
    never = (
        requests.ConnectTimeout,
        urllib3.exceptions.NewConnectionError,
        urllib3.exceptions.ConnectTimeoutError,
        ConnectionRefusedError,
    )
    return any(isinstance(current, never) for current in _chain(exc))


def _cut_frames(exc: BaseException) -> None:
    """Drop the tracebacks (and the prepared request) of a failed HTTP call's exceptions.

    Their frames, in requests, urllib3 and http.client, hold the request's headers and
    body in plain locals (http.client joins the header lines into one bytes object before
    it connects): a traceback printed with its locals would show the token. What happened
    stays in the exceptions' types and messages, which carry no header.
    """
    for current in _chain(exc):
        current.__traceback__ = None
        if isinstance(current, requests.RequestException):
            current.request = None
