"""The sandbox's ASGI application: platform routes, inspection routes, fault middleware.

Example:
    >>> app = create_app(token="t")
    >>> routes = sorted(r.path for r in app.routes if r.path.startswith(API_PREFIX) and r.path[-1] != "/")
    >>> [path.removeprefix(API_PREFIX) for path in routes]  # doctest: +NORMALIZE_WHITESPACE
    ['campaigns/triggers/get', 'campaigns/triggers/import_and_start',
     'campaigns/triggers/import_and_start_batch_task', 'campaigns/triggers/list', 'databases/fields',
     'databases/list', 'resources/get', 'resources/list', 'tasks/status']
    >>> app.state.sandbox.store.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolkit.core.contract import (
    API_PREFIX,
    BATCH_PATH,
    DATABASE_FIELDS_PATH,
    DATABASES_LIST_PATH,
    MAX_BODY_BYTES,
    MAX_FILE_BYTES,
    RESOURCE_GET_PATH,
    RESOURCES_LIST_PATH,
    SANDBOX_HEADER,
    SINGLE_PATH,
    STATUS_PATH,
    TRIGGER_GET_PATH,
    TRIGGERS_LIST_PATH,
    Format,
    error_envelope,
    ok_envelope,
)

from . import schemas
from .catalog import Catalog, CatalogData, CatalogError, default_catalog, load_catalog
from .engine import Engine
from .envelope import (
    BATCH_LISTS,
    MAX_ID,
    SINGLE_LISTS,
    STATUS_LISTS,
    ApiFailure,
    ImportEnvelope,
    RawProfiles,
    accepted_matching,
    decode,
    detect_format,
    parse_import,
    parse_status,
    read_bool,
    read_int,
    response_format,
    with_raw_profiles,
)
from .gc_pause import freeze_parsed, paused_gc
from .knobs import Faults, IdSource, Knobs, RateLimiter
from .memstore import MemoryStore
from .prepare import RequestSource
from .render import body_too_large, http_status, render, status_payload, status_xml
from .store import Store

__all__ = ["ABORT_EXTENSION", "DEFAULT_BODY_TIMEOUT", "SandboxState", "create_app"]

log = logging.getLogger("toolkit.sandbox")

#: Scope extension holding a callable that closes the client connection without an answer.
#: The sandbox's uvicorn protocol provides it (see ``toolkit.sandbox.server``).
ABORT_EXTENSION: Final = "toolkit.abort"

_MEDIA: Final = {"json": "application/json", "xml": "application/xml"}
#: Bodies from this size on are frozen once parsed (gc_pause.freeze_parsed): ~3,000 profiles.
_FREEZE_FROM: Final = 1 << 20

#: Seconds a request body may stall (no bytes arriving) before the sandbox answers 408 and drops
#: the connection.
DEFAULT_BODY_TIMEOUT: Final = 30.0


@dataclass
class SandboxState:
    """What the routes share: kept on ``app.state.sandbox``."""

    token: str
    store: Store | MemoryStore
    engine: Engine
    knobs: Knobs
    max_body_bytes: int
    max_file_bytes: int
    catalog: Catalog
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    allow_undocumented_matching: bool = False


def _respond(body: bytes, fmt: Format, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=_MEDIA[fmt], headers=headers)


def _envelope(payload: dict[str, Any], fmt: Format, knobs: Knobs | None = None) -> Response:
    """An envelope answer; its HTTP status is the error code, or 200 in the ``error_in_200`` variant."""
    in_200 = knobs is not None and knobs.variant == "error_in_200"
    return _respond(render(payload, fmt), fmt, 200 if in_200 else http_status(payload["error"]))


def _format_from_headers(scope: Scope) -> Format:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return detect_format(value.decode("latin-1"), b"")
    return "json"


# --- middleware ----------------------------------------------------------------------------
class PlatformFaults:
    """Pure ASGI middleware applying the knobs to the platform routes, before anything else.

    Order: latency, rate limit (429 + ``Retry-After``), then one seeded draw deciding
    fail (500/502/503), drop (connection closed, request ignored) or lose (request handled,
    answer replaced by a closed connection).
    """

    def __init__(self, app: ASGIApp, knobs: Knobs) -> None:
        self.app = app
        self.knobs = knobs
        self.faults = Faults(knobs)
        self.limiter = RateLimiter(knobs.rate_limit) if knobs.rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)
            scope.setdefault("state", {})["toolkit.latency"] = self.knobs.latency_ms
        fmt = _format_from_headers(scope)
        if self.limiter is not None and (retry := self.limiter.acquire()) is not None:
            payload = error_envelope(429, f"too many requests: over {self.knobs.rate_limit:g} per second")
            response = _respond(render(payload, fmt), fmt, 429, {"Retry-After": str(retry)})
            scope.setdefault("state", {})["toolkit.fault"] = "rate-limited"
            await response(scope, receive, send)
            return
        fault = self.faults.draw()
        if fault.kind == "fail":
            payload = error_envelope(fault.status, "sandbox: injected server error")
            scope.setdefault("state", {})["toolkit.fault"] = "failed"
            await _respond(render(payload, fmt), fmt, fault.status)(scope, receive, send)
            return
        abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if fault.kind in ("drop", "lose") and abort is None:
            # Not served by the sandbox's own protocol (e.g. a test client): the nearest thing.
            log.warning("cannot close the connection under this server; answering 502 instead")
            await _respond(render(error_envelope(502, "sandbox: dropped"), fmt), fmt, 502)(
                scope, receive, send
            )
            return
        if fault.kind == "drop" and abort is not None:
            scope.setdefault("state", {})["toolkit.fault"] = "dropped"
            abort()
            return
        if fault.kind == "lose" and abort is not None:
            scope.setdefault("state", {})["toolkit.fault"] = "answer lost"
            close = abort

            async def lose(message: Message) -> None:
                # Swallow the answer; once it is complete, the work is done: close instead.
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    close()

            await self.app(scope, receive, lose)
            return
        await self.app(scope, receive, send)


class SandboxMark:
    """Pure ASGI middleware: every answer says it comes from a sandbox (``X-Toolkit-Sandbox: 1``),
    so a client can tell a rehearsal from the real platform before it sends anything."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def mark(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (SANDBOX_HEADER.lower().encode(), b"1")]
            await send(message)

        await self.app(scope, receive, mark)


class AccessLog:
    """One log line per request: method, path (never the query string: it may hold a token),
    status or fault, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: list[int] = []
        logged = False

        def write_line() -> None:
            nonlocal logged
            logged = True
            state = scope.get("state") or {}
            outcome = f"{status[0]}" if status else "no answer"
            if fault := state.get("toolkit.fault"):
                outcome += f" ({fault})"
            if latency := state.get("toolkit.latency"):
                outcome += f" (+{latency:g} ms latency knob)"
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s -> %s in %.1f ms", scope["method"], scope["path"], outcome, ms)

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                write_line()  # before the answer's last bytes go: a client that has it finds it logged
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            if not logged:  # no answer (a fault knob, a dropped connection, an error)
                write_line()


# --- helpers ---------------------------------------------------------------------------------
class BodyStalled(Exception):
    """No byte of the request body arrived for ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the request body stalled: no data for {timeout:g} s")


async def _read_body(request: Request, limit: int, timeout: float) -> bytes | None:
    """The body, or None once it is over ``limit`` (never holding more than limit + a chunk).

    Raises :class:`BodyStalled` when no data arrives for ``timeout`` seconds: a stalled upload
    must not hold a connection (and a worker's memory) for ever.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        # Answer now; uvicorn reads and discards the rest so the client still gets the answer.
        return None
    size, chunks = 0, []
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(timeout):
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise BodyStalled(timeout) from None
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _stalled(exc: BodyStalled, fmt: Format) -> Response:
    # 408, and the connection is closed after it: the rest of the body will never be read.
    return _respond(render(error_envelope(408, str(exc)), fmt), fmt, 408, {"Connection": "close"})


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _check_token(expected: str, given: object, missing: str | None = None) -> None:
    if given is None or given == "":
        raise ApiFailure(
            401,
            missing or "token required: send 'Authorization: Bearer <token>' or a 'token' field in the body",
        )
    if not isinstance(given, str):
        raise ApiFailure(400, f"token must be a string, not {type(given).__name__}")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiFailure(403, "forbidden: the token is wrong")


# Module level, so the dependency's annotations resolve (this module uses postponed annotations).
_BEARER = HTTPBearer(auto_error=False, description="The sandbox token")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> None:
    """FastAPI dependency of the inspection routes: Bearer token required, and no query parameter
    the route does not know (a typo'd filter, ``?trigger=7``, must not quietly answer everything)."""
    _check_token(request.app.state.sandbox.token, credentials.credentials if credentials else None)
    route = request.scope.get("route")
    known = {p.alias for p in route.dependant.query_params} if route is not None else set()
    if unknown := sorted(set(request.query_params) - known):
        expected = ", ".join(sorted(known)) or "none"
        raise ApiFailure(400, f"unknown query parameter {unknown[0]!r} (this route takes: {expected})")


Handler = Callable[[dict[str, Any], bool, Format], Awaitable[Response]]


#: What an older install (variant ``body_token_only``) answers without a ``token`` in the body.
_BODY_TOKEN_REQUIRED: Final = "API token required"


async def _platform_call(request: Request, lists: frozenset[tuple[str, ...]], handler: Handler) -> Response:
    state: SandboxState = request.app.state.sandbox
    knobs = state.knobs
    fmt = _format_from_headers(request.scope)
    try:
        raw = await _read_body(request, state.max_body_bytes, state.body_timeout)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening
    except BodyStalled as exc:
        return _stalled(exc, fmt)
    fmt = detect_format(request.headers.get("content-type"), raw or b"")
    request.state.raw_body = raw  # a large batch task's profiles are read again by the preparer
    if raw is None:
        return _respond(body_too_large(fmt), fmt, 200 if knobs.variant == "error_in_200" else 400)
    answer: Format = fmt
    body_only = knobs.variant == "body_token_only"
    try:
        header_token = None if body_only else _bearer(request)
        if header_token:
            _check_token(state.token, header_token)
        body = await run_in_threadpool(_decode, raw, fmt, lists)
        format_error = None
        try:
            answer = response_format(body, fmt)
        except ApiFailure as exc:
            format_error = exc
        token = body.get("token")
        if not header_token:
            _check_token(state.token, token, _BODY_TOKEN_REQUIRED if body_only else None)
        elif token is not None and not isinstance(token, str):
            raise ApiFailure(400, f"token must be a string, not {type(token).__name__}")
        if format_error is not None:
            raise format_error
        return await handler(body, fmt == "xml", answer)
    except ApiFailure as exc:
        return _envelope(error_envelope(exc.code, exc.text, exc.debug), answer, knobs)


def _decode(raw: bytes, fmt: Format, lists: frozenset[tuple[str, ...]]) -> dict[str, Any]:
    with paused_gc():  # a body is tens of thousands of containers, none in a cycle (gc_pause.py)
        body = decode(raw, fmt, lists)
        if len(raw) >= _FREEZE_FROM:
            # Out of the collector's reach before it is re-enabled, not only once its task is
            # queued: else the first collection after this walks the whole body.
            freeze_parsed()
        return body


def _responses(ok: type[BaseModel] | None, *codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented answers of a platform route: JSON or XML, success and errors alike."""
    both = {"application/json": {}, "application/xml": {"schema": {"type": "string"}}}
    docs: dict[int | str, dict[str, Any]] = {
        200: {"model": ok, "content": both, "description": "Success (JSON or XML)"}
    }
    text = {
        400: "Invalid request (malformed body, bad envelope, body over 10 MB)",
        401: "Token missing",
        403: "Wrong token",
        404: "Not found (task, trigger campaign, database or resource)",
        408: "The request body stalled (the connection is closed)",
        409: "More than one profile matches",
        429: "Rate limited (knob); see Retry-After",
        500: "Injected failure (knob); also 502, 503",
    }
    for code in codes:
        docs[code] = {"model": schemas.ErrorEnvelope, "content": both, "description": text[code]}
    return docs


_ERRORS: Final = (400, 401, 403, 404, 408, 429, 500)


def _page(items: list[dict[str, Any]], body: dict[str, Any], xml: bool) -> tuple[list[dict[str, Any]], int]:
    """The items from ``from_id`` on (by id), at most ``limit`` (V: defaults 1 and 1000), and the
    ``next_from_id`` to ask for the rest."""
    from_id = read_int(body, "from_id", xml=xml, required=False, low=0) or 1
    limit = read_int(body, "limit", xml=xml, required=False) or 1000
    page = [item for item in items if item["id"] >= from_id][:limit]
    return page, (page[-1]["id"] + 1 if page else from_id)


# --- the app ---------------------------------------------------------------------------------
def create_app(
    *,
    token: str,
    db: str | Path | None = None,
    knobs: Knobs | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    paused: bool = False,
    catalog: CatalogData | None = None,
    strict_catalog: bool = False,
    allow_undocumented_matching: bool = False,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    two_processes: bool = False,
) -> FastAPI:
    """Build the sandbox application (the store opens now; the worker runs with the app's lifespan).

    ``db`` is a SQLite file to keep state across restarts (None: in memory). The two limits
    default to the platform's (contract.MAX_BODY_BYTES, MAX_FILE_BYTES); tests lower them.
    ``paused`` starts the batch worker paused: tasks stay queued until ``/_sandbox/step`` or
    ``/_sandbox/resume``. ``catalog`` replaces the default catalog (:func:`default_catalog`);
    ``strict_catalog`` refuses a trigger id it does not know (404) instead of registering it;
    ``allow_undocumented_matching`` accepts the six matching modes the page of
    ``import_and_start_batch_task`` does not list; ``body_timeout`` is how long a request body
    may stall (seconds) before the answer is 408 and the connection is closed.
    ``two_processes`` checks the profiles of large tasks in a second process (prepare.py), so
    a busy sandbox works on two cores; the answers are the same.
    """
    knobs = knobs or Knobs()
    if not body_timeout > 0:
        raise ValueError(f"body_timeout must be positive, not {body_timeout}")
    # In memory (the default) the store is plain Python structures; SQLite only for a --db file.
    store: Store | MemoryStore = Store(str(db)) if db else MemoryStore()
    engine = Engine(
        store, IdSource(knobs.seed), knobs.processing_rate, paused=paused, two_processes=two_processes
    )
    known = Catalog(catalog if catalog is not None else default_catalog(), strict=strict_catalog)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()
            store.close()

    app = FastAPI(
        title="toolkit sandbox",
        version="1.1",
        summary="A local stand-in for the platform API (imports with a trigger start, task status, catalog).",
        description=(
            "Platform routes take JSON or XML (by Content-Type or a body starting with '<') and "
            "answer in the `format` the body names, else in the request's format. Auth: "
            "`Authorization: Bearer <token>` or the body's `token`. Routes under `/_sandbox/` are "
            f"for tests and notebooks, not part of the platform API. Answers: variant `{knobs.variant}`."
        ),
        lifespan=lifespan,
    )
    app.state.sandbox = SandboxState(
        token,
        store,
        engine,
        knobs,
        max_body_bytes,
        max_file_bytes,
        known,
        body_timeout,
        allow_undocumented_matching,
    )
    app.add_middleware(PlatformFaults, knobs=knobs)
    app.add_middleware(AccessLog)
    app.add_middleware(SandboxMark)  # outermost: even an injected fault's answer is marked
    bearer = _BEARER
    defs: dict[str, Any] = {}
    matching = accepted_matching(allow_undocumented_matching)

    @app.exception_handler(ApiFailure)
    async def _failure(request: Request, exc: ApiFailure) -> Response:
        return _envelope(error_envelope(exc.code, exc.text, exc.debug), "json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and wrong methods answer in the platform's envelope too.
        response = _envelope(error_envelope(exc.status_code, str(exc.detail)), "json")
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route
            methods = {
                m
                for r in app.routes
                if getattr(r, "path", None) == request.url.path
                for m in getattr(r, "methods", None) or ()  # a Mount has no methods
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _envelope(error_envelope(400, f"invalid request: {problems}"[:500]), "json")

    def platform_route(
        path: str,
        summary: str,
        request: type[BaseModel],
        ok: type[BaseModel],
        example_xml: str,
        *,
        codes: tuple[int, ...] = _ERRORS,
        aliases: tuple[str, ...] = (),
    ) -> Callable[[Callable[..., Awaitable[Response]]], Any]:
        """Register a platform route (POST, JSON or XML, documented both ways); ``aliases`` are
        the same route under the spelling the docs print (a trailing slash), left out of /docs."""

        def register(endpoint: Callable[..., Awaitable[Response]]) -> Any:
            doc = schemas.request_doc(request, example_xml, defs, matching)
            for alias in aliases:
                app.post(alias, include_in_schema=False)(endpoint)
            return app.post(
                path,
                tags=["platform"],
                summary=summary,
                response_model=None,
                responses=_responses(ok, *codes),
                openapi_extra=doc,
                dependencies=[Depends(bearer)],
            )(endpoint)

        return register

    # --- platform routes -----------------------------------------------------------------
    xml_import = "<xml><trigger_id>96</trigger_id><data><email>a@example.com</email></data></xml>"

    @platform_route(
        BATCH_PATH,
        "Import profiles and start a trigger campaign (background task)",
        schemas.BatchRequest,
        schemas.TaskAccepted,
        xml_import,
    )
    async def import_and_start_batch_task(request: Request) -> Response:
        """Validates the envelope and the trigger, answers at once with a `task_id`, imports the
        profiles in the background. Per-profile problems fail only that profile (see `tasks/status`)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            def envelope() -> ImportEnvelope:
                env = parse_import(
                    body,
                    xml=xml,
                    single=False,
                    max_file_bytes=max_file_bytes,
                    undocumented_matching=allow_undocumented_matching,
                )
                skim_from = engine.skim_from
                if skim_from is not None and not xml and len(env.profiles) >= skim_from:
                    env = with_raw_profiles(env, request.state.raw_body)
                    if isinstance(env.profiles, RawProfiles):
                        body.pop("data", None)  # the parsed profiles go now, while in the cache
                return env

            env = await run_in_threadpool(envelope)
            known.check_startable(env.trigger_id)
            source = RequestSource(request.state.raw_body, xml, max_file_bytes, allow_undocumented_matching)
            task_id = await run_in_threadpool(engine.submit, env, source)
            if knobs.variant == "nested_task_id":
                return _envelope(ok_envelope(data={"task_id": task_id}), fmt)
            return _envelope(ok_envelope(task_id=task_id), fmt)

        return await _platform_call(request, BATCH_LISTS, handle)

    @platform_route(
        SINGLE_PATH,
        "Import one profile and start a trigger campaign (synchronous)",
        schemas.SingleRequest,
        schemas.ProfileImported,
        xml_import,
        codes=(*_ERRORS, 409),
    )
    async def import_and_start(request: Request) -> Response:
        """`data` is one profile object (or `{"data": {...}}`). Answers with its `profile_id`, or
        with the profile's own error (400 invalid, 404 unknown profile_id, 409 ambiguous match)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            env = await run_in_threadpool(
                lambda: parse_import(
                    body,
                    xml=xml,
                    single=True,
                    max_file_bytes=max_file_bytes,
                    undocumented_matching=allow_undocumented_matching,
                )
            )
            known.check_startable(env.trigger_id)
            result = await run_in_threadpool(engine.import_one, env, env.profiles[0])
            if "profile_id" in result:
                return _envelope(ok_envelope(profile_id=result["profile_id"]), fmt)
            return _envelope(error_envelope(result["error"], result["error_text"]), fmt, knobs)

        return await _platform_call(request, SINGLE_LISTS, handle)

    @platform_route(
        STATUS_PATH,
        "A task's status, progress and per-profile results",
        schemas.StatusRequest,
        schemas.TaskStatus,
        "<xml><task_id>30421978-7f6d-4f39-913f-fb6cad8e2477</task_id></xml>",
    )
    async def tasks_status(request: Request) -> Response:
        """`queued` -> `processing` (progress rising) -> `completed` with one result per profile in
        input order: `{"profile_id"}` or `{"error", "error_text"}` (the variant `short_result`
        answers `{captured, errors, status}` instead). `result` is absent until then."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            task_id = parse_status(body)
            task = await run_in_threadpool(store.task, task_id)
            if task is None:
                raise ApiFailure(404, f"task id {task_id[:100]!r} is unknown")
            short = knobs.variant == "short_result"
            if fmt == "xml":
                return _respond(status_xml(task, short=short, captured=knobs.captured), "xml")
            return _respond(orjson.dumps(status_payload(task, short=short, captured=knobs.captured)), "json")

        return await _platform_call(request, STATUS_LISTS, handle)

    # --- the catalog (read-only platform methods) -----------------------------------------
    xml_list = "<xml><limit>100</limit></xml>"
    xml_get = "<xml><id>96</id></xml>"

    def _answer(fmt: Format, **fields: Any) -> Response:
        return _envelope(ok_envelope(**fields), fmt)

    @platform_route(
        TRIGGERS_LIST_PATH,
        "Trigger campaigns, by id",
        schemas.TriggersListRequest,
        schemas.TriggersList,
        xml_list,
        aliases=(TRIGGERS_LIST_PATH + "/",),
    )
    async def triggers_list(request: Request) -> Response:
        """From `from_id` (1), at most `limit` (1000); `is_active`: only the active ones."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            items = known.triggers(active_only=read_bool(body, "is_active", xml=xml))
            page, _ = _page(items, body, xml)
            return _answer(fmt, data=page, total_count=len(items))

        return await _platform_call(request, STATUS_LISTS, handle)

    @platform_route(
        TRIGGER_GET_PATH,
        "One trigger campaign: active?, type, database, resource, channel",
        schemas.IdRequest,
        schemas.TriggerAnswer,
        xml_get,
        aliases=(TRIGGER_GET_PATH + "/",),
    )
    async def trigger_get(request: Request) -> Response:
        """An id the catalog does not know is registered as an active API-call trigger, unless the
        sandbox runs with a strict catalog (then 404)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            trigger_id = read_int(body, "id", xml=xml, required=True)
            assert trigger_id is not None
            return _answer(fmt, data=known.trigger(trigger_id))

        return await _platform_call(request, STATUS_LISTS, handle)

    @platform_route(
        DATABASES_LIST_PATH,
        "Profile databases, by id",
        schemas.PageRequest,
        schemas.DatabasesList,
        xml_list,
        aliases=(DATABASES_LIST_PATH + "/",),
    )
    async def databases_list(request: Request) -> Response:
        """From `from_id` (1), at most `limit` (1000); `next_from_id` asks for the rest."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            items = known.databases()
            page, next_id = _page(items, body, xml)
            return _answer(fmt, data=page, next_from_id=next_id, total_count=len(items))

        return await _platform_call(request, STATUS_LISTS, handle)

    @platform_route(
        DATABASE_FIELDS_PATH,
        "A database's profile fields: the system fields, then its custom fields with their types",
        schemas.IdRequest,
        schemas.FieldsList,
        "<xml><id>1</id></xml>",
        aliases=(DATABASE_FIELDS_PATH + "/",),
    )
    async def database_fields(request: Request) -> Response:
        """The database `id` (also read as `db_id`)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            name = "id" if body.get("id") is not None or body.get("db_id") is None else "db_id"
            database_id = read_int(body, name, xml=xml, required=True)
            assert database_id is not None
            return _answer(fmt, data=known.fields(database_id))

        return await _platform_call(request, STATUS_LISTS, handle)

    @platform_route(
        RESOURCES_LIST_PATH,
        "Resources, by id (their channels: resources/get)",
        schemas.PageRequest,
        schemas.ResourcesList,
        xml_list,
        aliases=(RESOURCES_LIST_PATH + "/",),
    )
    async def resources_list(request: Request) -> Response:
        """From `from_id` (1), at most `limit` (1000); `next_from_id` asks for the rest."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            items = known.resources()
            page, next_id = _page(items, body, xml)
            return _answer(fmt, data=page, next_from_id=next_id, total_count=len(items))

        return await _platform_call(request, STATUS_LISTS, handle)

    @platform_route(
        RESOURCE_GET_PATH,
        "One resource: its channels and the databases it serves",
        schemas.IdRequest,
        schemas.ResourceAnswer,
        "<xml><id>21</id></xml>",
        aliases=(RESOURCE_GET_PATH + "/",),
    )
    async def resource_get(request: Request) -> Response:
        """404 for a resource the catalog does not know."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            resource_id = read_int(body, "id", xml=xml, required=True)
            assert resource_id is not None
            return _answer(fmt, data=known.resource(resource_id))

        return await _platform_call(request, STATUS_LISTS, handle)

    # --- inspection routes ---------------------------------------------------------------
    def _json(data: Any) -> Response:
        return Response(orjson.dumps(data), media_type="application/json")

    sandbox_errors: dict[int | str, dict[str, Any]] = {
        400: {
            "model": schemas.ErrorEnvelope,
            "description": "A parameter is missing, out of range or of the wrong type",
        },
        401: {"model": schemas.ErrorEnvelope, "description": "Token missing"},
        403: {"model": schemas.ErrorEnvelope, "description": "Wrong token"},
    }

    @app.get(
        "/_sandbox/sends",
        tags=["sandbox"],
        summary="Trigger sends, oldest first",
        response_model=None,
        responses={200: {"model": list[schemas.SendRecord]}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def sends(
        trigger_id: Annotated[
            int | None, Query(ge=1, le=MAX_ID, description="only this trigger's sends")
        ] = None,
        task_id: Annotated[str | None, Query(description="only this task's sends")] = None,
    ) -> Response:
        """One record per successfully imported profile (unless `skip_triggers`)."""
        return _json(await run_in_threadpool(store.list_sends, trigger_id, task_id))

    @app.get(
        "/_sandbox/profiles",
        tags=["sandbox"],
        summary="Stored profiles, oldest first",
        response_model=None,
        responses={200: {"model": list[schemas.ProfileRecord]}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def profiles() -> Response:
        """Every profile with its fields and subscriptions."""
        return _json(await run_in_threadpool(store.list_profiles))

    @app.get(
        "/_sandbox/tasks",
        tags=["sandbox"],
        summary="Tasks with their counts, oldest first",
        response_model=None,
        responses={200: {"model": list[schemas.TaskRecord]}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def tasks() -> Response:
        """Every task: status, total, done, imported, failed, times."""
        return _json(await run_in_threadpool(store.list_tasks))

    @app.get(
        "/_sandbox/catalog",
        tags=["sandbox"],
        summary="The catalog: trigger campaigns, databases with fields, resources with channels",
        response_model=None,
        responses={200: {"model": CatalogData}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def catalog_get() -> Response:
        """As served by the catalog methods, triggers registered on first use included."""
        return _json(known.document())

    @app.put(
        "/_sandbox/catalog",
        tags=["sandbox"],
        summary="Replace the catalog",
        response_model=None,
        responses={
            200: {"model": CatalogData},
            408: {"model": schemas.ErrorEnvelope, "description": "The request body stalled"},
            **sandbox_errors,
        },
        openapi_extra=schemas.json_body(CatalogData, defs),
        dependencies=[Depends(require_token)],
    )
    async def catalog_put(request: Request) -> Response:
        """Ids unique per kind; a trigger's `list_id` and `resource_id` and a resource's `dbs_ids`
        name items of the catalog (400 otherwise). `/_sandbox/reset` restores the starting catalog."""
        try:
            raw = await _read_body(request, max_body_bytes, body_timeout)
        except BodyStalled as exc:
            return _stalled(exc, "json")
        if raw is None:
            return _respond(body_too_large("json"), "json", 400)
        try:
            data = load_catalog(orjson.loads(raw), "the catalog")
        except orjson.JSONDecodeError as exc:
            raise ApiFailure(400, f"malformed JSON: {exc}") from None
        except CatalogError as exc:
            raise ApiFailure(400, str(exc)[:500]) from None
        known.replace(data)
        return _json(known.document())

    @app.post(
        "/_sandbox/reset",
        tags=["sandbox"],
        summary="Forget all profiles, tasks and sends; the catalog the sandbox started with",
        response_model=None,
        responses={200: {"description": '{"reset": true}'}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def reset() -> Response:
        """Queued and running tasks are dropped too; triggers registered on first use are forgotten."""
        await run_in_threadpool(engine.reset)
        known.reset()
        return _json({"reset": True})

    @app.post(
        "/_sandbox/pause",
        tags=["sandbox"],
        summary="Pause the batch worker",
        response_model=None,
        responses={200: {"description": '{"paused": true}'}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def pause() -> Response:
        """Answers once the chunk of profiles under way is committed; from then on queued tasks stay
        `queued` and a running one stays `processing` at its progress."""
        await run_in_threadpool(engine.pause)
        return _json({"paused": True})

    @app.post(
        "/_sandbox/step",
        tags=["sandbox"],
        summary="Let a paused worker import a number of profiles",
        response_model=None,
        responses={200: {"description": '{"processed": N, "paused": true}'}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def step(
        profiles: Annotated[
            int, Query(ge=0, le=MAX_ID, description="profiles to import before pausing again")
        ],
    ) -> Response:
        """Answers once those profiles are committed (fewer when the queue runs dry): tasks are taken
        in order, and the next task is not started by a step that does not reach it."""
        processed = await run_in_threadpool(engine.step, profiles)
        return _json({"processed": processed, "paused": True})

    @app.post(
        "/_sandbox/resume",
        tags=["sandbox"],
        summary="Let the batch worker run freely again",
        response_model=None,
        responses={200: {"description": '{"paused": false}'}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def resume() -> Response:
        """Undoes `/_sandbox/pause` (and a paused start)."""
        await run_in_threadpool(engine.resume)
        return _json({"paused": False})

    @app.get("/_sandbox/health", tags=["sandbox"], summary="Liveness (no token needed)")
    async def health() -> dict[str, str]:
        """`{"status": "ok"}` while the server runs."""
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            doc.setdefault("components", {}).setdefault("schemas", {}).update(defs)
            app.openapi_schema = schemas.settle_validation_answers(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app
