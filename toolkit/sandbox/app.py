"""The sandbox's ASGI application: platform routes, inspection routes, fault middleware.

Example:
    >>> app = create_app(token="t")
    >>> sorted(r.path for r in app.routes if r.path.startswith("/api/"))
    ['/api/v1.1/campaigns/triggers/import_and_start', '/api/v1.1/campaigns/triggers/import_and_start_batch_task', '/api/v1.1/tasks/status']
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
    MAX_BODY_BYTES,
    MAX_FILE_BYTES,
    SINGLE_PATH,
    STATUS_PATH,
    Format,
    error_envelope,
    ok_envelope,
)

from . import schemas
from .engine import Engine
from .envelope import (
    BATCH_LISTS,
    SINGLE_LISTS,
    STATUS_LISTS,
    ApiFailure,
    decode,
    detect_format,
    parse_import,
    parse_status,
    response_format,
)
from .knobs import Faults, IdSource, Knobs, RateLimiter
from .render import body_too_large, http_status, render, status_payload, status_xml
from .store import Store

__all__ = ["ABORT_EXTENSION", "SandboxState", "create_app"]

log = logging.getLogger("toolkit.sandbox")

#: Scope extension holding a callable that closes the client connection without an answer.
#: The sandbox's uvicorn protocol provides it (see ``toolkit.sandbox.server``).
ABORT_EXTENSION: Final = "toolkit.abort"

_MEDIA: Final = {"json": "application/json", "xml": "application/xml"}


@dataclass
class SandboxState:
    """What the routes share: kept on ``app.state.sandbox``."""

    token: str
    store: Store
    engine: Engine
    knobs: Knobs
    max_body_bytes: int
    max_file_bytes: int


def _respond(body: bytes, fmt: Format, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=_MEDIA[fmt], headers=headers)


def _envelope(payload: dict[str, Any], fmt: Format) -> Response:
    return _respond(render(payload, fmt), fmt, http_status(payload["error"]))


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

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            state = scope.get("state") or {}
            outcome = f"{status[0]}" if status else "no answer"
            if fault := state.get("toolkit.fault"):
                outcome += f" ({fault})"
            if latency := state.get("toolkit.latency"):
                outcome += f" (+{latency:g} ms latency knob)"
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s -> %s in %.1f ms", scope["method"], scope["path"], outcome, ms)


# --- helpers ---------------------------------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is over ``limit`` (never holding more than limit + a chunk)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        # Answer now; uvicorn reads and discards the rest so the client still gets the answer.
        return None
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _check_token(expected: str, given: object) -> None:
    if given is None or given == "":
        raise ApiFailure(
            401, "token required: send 'Authorization: Bearer <token>' or a 'token' field in the body"
        )
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiFailure(403, "forbidden: the token is wrong")


# Module level, so the dependency's annotations resolve (this module uses postponed annotations).
_BEARER = HTTPBearer(auto_error=False, description="The sandbox token")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> None:
    """FastAPI dependency of the inspection routes: Bearer token required."""
    _check_token(request.app.state.sandbox.token, credentials.credentials if credentials else None)


Handler = Callable[[dict[str, Any], bool, Format], Awaitable[Response]]


async def _platform_call(request: Request, lists: frozenset[tuple[str, ...]], handler: Handler) -> Response:
    state: SandboxState = request.app.state.sandbox
    try:
        raw = await _read_body(request, state.max_body_bytes)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening
    fmt = detect_format(request.headers.get("content-type"), raw or b"")
    if raw is None:
        return _respond(body_too_large(fmt), fmt, 400)
    answer: Format = fmt
    try:
        header_token = _bearer(request)
        if header_token:
            _check_token(state.token, header_token)
        body = await run_in_threadpool(decode, raw, fmt, lists)
        format_error = None
        try:
            answer = response_format(body, fmt)
        except ApiFailure as exc:
            format_error = exc
        if not header_token:
            _check_token(state.token, body.get("token"))
        if format_error is not None:
            raise format_error
        return await handler(body, fmt == "xml", answer)
    except ApiFailure as exc:
        return _envelope(error_envelope(exc.code, exc.text, exc.debug), answer)
    except RecursionError:
        return _envelope(error_envelope(400, "the body nests too deeply"), answer)


def _request_doc(model: type[BaseModel], example_xml: str, defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/xml": {"schema": {"type": "string"}, "example": example_xml},
            },
        }
    }


def _responses(ok: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    docs: dict[int | str, dict[str, Any]] = {
        200: {"model": ok, "content": {"application/xml": {}}, "description": "Success (JSON or XML)"}
    }
    text = {
        400: "Invalid request (malformed body, bad envelope, body over 10 MB)",
        401: "Token missing",
        403: "Wrong token",
        404: "Unknown task",
        429: "Rate limited (knob); see Retry-After",
        500: "Injected failure (knob); also 502, 503",
    }
    for code in codes:
        docs[code] = {"model": schemas.ErrorEnvelope, "description": text[code]}
    return docs


# --- the app ---------------------------------------------------------------------------------
def create_app(
    *,
    token: str,
    db: str | Path | None = None,
    knobs: Knobs | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    paused: bool = False,
) -> FastAPI:
    """Build the sandbox application (the store opens now; the worker runs with the app's lifespan).

    ``db`` is a SQLite file to keep state across restarts (None: in memory). The two limits
    default to the platform's (contract.MAX_BODY_BYTES, MAX_FILE_BYTES); tests lower them.
    ``paused`` starts the batch worker paused: tasks stay queued until ``/_sandbox/step`` or
    ``/_sandbox/resume``.
    """
    knobs = knobs or Knobs()
    store = Store(str(db) if db else ":memory:")
    engine = Engine(store, IdSource(knobs.seed), knobs.processing_rate, paused=paused)

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
        summary="A local stand-in for the platform API (import_and_start_batch_task, tasks/status).",
        description=(
            "Platform routes take JSON or XML (by Content-Type or a body starting with '<') and "
            "answer in the `format` the body names, else in the request's format. Auth: "
            "`Authorization: Bearer <token>` or the body's `token`. Routes under `/_sandbox/` are "
            "for tests and notebooks, not part of the platform API."
        ),
        lifespan=lifespan,
    )
    app.state.sandbox = SandboxState(token, store, engine, knobs, max_body_bytes, max_file_bytes)
    app.add_middleware(PlatformFaults, knobs=knobs)
    app.add_middleware(AccessLog)
    bearer = _BEARER
    defs: dict[str, Any] = {}

    @app.exception_handler(ApiFailure)
    async def _failure(request: Request, exc: ApiFailure) -> Response:
        return _envelope(error_envelope(exc.code, exc.text, exc.debug), "json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and wrong methods answer in the platform's envelope too.
        response = _envelope(error_envelope(exc.status_code, str(exc.detail)), "json")
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _envelope(error_envelope(400, f"invalid request: {problems}"), "json")

    # --- platform routes -----------------------------------------------------------------
    xml_batch = "<xml><trigger_id>96</trigger_id><data><email>a@example.com</email></data></xml>"

    @app.post(
        BATCH_PATH,
        tags=["platform"],
        summary="Import profiles and start a trigger campaign (background task)",
        response_model=None,
        responses=_responses(schemas.TaskAccepted, 400, 401, 403, 429, 500),
        openapi_extra=_request_doc(schemas.BatchRequest, xml_batch, defs),
        dependencies=[Depends(bearer)],
    )
    async def import_and_start_batch_task(request: Request) -> Response:
        """Validates the envelope, answers at once with a `task_id`, imports the profiles in the
        background. Per-profile problems fail only that profile (see `tasks/status`)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            env = await run_in_threadpool(
                lambda: parse_import(body, xml=xml, single=False, max_file_bytes=max_file_bytes)
            )
            task_id = await run_in_threadpool(engine.submit, env)
            return _envelope(ok_envelope(task_id=task_id), fmt)

        return await _platform_call(request, BATCH_LISTS, handle)

    xml_single = "<xml><trigger_id>96</trigger_id><data><email>a@example.com</email></data></xml>"

    @app.post(
        SINGLE_PATH,
        tags=["platform"],
        summary="Import one profile and start a trigger campaign (synchronous)",
        response_model=None,
        responses=_responses(schemas.ProfileImported, 400, 401, 403, 404, 429, 500),
        openapi_extra=_request_doc(schemas.SingleRequest, xml_single, defs),
        dependencies=[Depends(bearer)],
    )
    async def import_and_start(request: Request) -> Response:
        """`data` is one profile object (or `{"data": {...}}`). Answers with its `profile_id`, or
        with the profile's own error (400 invalid, 404 unknown profile_id, 409 ambiguous match)."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            env = await run_in_threadpool(
                lambda: parse_import(body, xml=xml, single=True, max_file_bytes=max_file_bytes)
            )
            result = await run_in_threadpool(engine.import_one, env, env.profiles[0])
            if "profile_id" in result:
                return _envelope(ok_envelope(profile_id=result["profile_id"]), fmt)
            return _envelope(error_envelope(result["error"], result["error_text"]), fmt)

        return await _platform_call(request, SINGLE_LISTS, handle)

    xml_status = "<xml><task_id>30421978-7f6d-4f39-913f-fb6cad8e2477</task_id></xml>"

    @app.post(
        STATUS_PATH,
        tags=["platform"],
        summary="A task's status, progress and per-profile results",
        response_model=None,
        responses=_responses(schemas.TaskStatus, 400, 401, 403, 404, 429, 500),
        openapi_extra=_request_doc(schemas.StatusRequest, xml_status, defs),
        dependencies=[Depends(bearer)],
    )
    async def tasks_status(request: Request) -> Response:
        """`queued` -> `processing` (progress rising) -> `completed` with one result per profile in
        input order: `{"profile_id"}` or `{"error", "error_text"}`. `result` is absent until then."""

        async def handle(body: dict[str, Any], xml: bool, fmt: Format) -> Response:
            task_id = parse_status(body)
            task = await run_in_threadpool(store.task, task_id)
            if task is None:
                raise ApiFailure(404, f"task id {task_id[:100]!r} is unknown")
            if fmt == "xml":
                return _respond(status_xml(task), "xml")
            return _respond(orjson.dumps(status_payload(task)), "json")

        return await _platform_call(request, STATUS_LISTS, handle)

    # --- inspection routes ---------------------------------------------------------------
    def _json(data: Any) -> Response:
        return Response(orjson.dumps(data), media_type="application/json")

    sandbox_errors: dict[int | str, dict[str, Any]] = {
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
        trigger_id: Annotated[int | None, Query(description="only this trigger's sends")] = None,
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

    @app.post(
        "/_sandbox/reset",
        tags=["sandbox"],
        summary="Forget all profiles, tasks and sends",
        response_model=None,
        responses={200: {"description": '{"reset": true}'}, **sandbox_errors},
        dependencies=[Depends(require_token)],
    )
    async def reset() -> Response:
        """Queued and running tasks are dropped too."""
        await run_in_threadpool(engine.reset)
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
        profiles: Annotated[int, Query(ge=0, description="profiles to import before pausing again")],
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
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
