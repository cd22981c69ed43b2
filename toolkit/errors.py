"""The toolkit's exception tree.

Every error the toolkit raises on purpose is a :class:`ToolkitError`. Where an error
also *means* a builtin, it inherits it too, so ``except ValueError`` keeps working::

    ToolkitError
    ├── InvalidArgumentError (ValueError)      a bad call, caught before anything is built
    │   ├── ColumnNotFoundError (KeyError)      a mapped column is not in the frame
    │   ├── ConfigurationError                  a required setting (env var) is missing
    │   └── SegmentFileError                    a segment file cannot be read (encoding, ragged rows, empty)
    ├── SerializationError (TypeError)          a value cannot be encoded as JSON/XML
    ├── AlreadyLaunched (RuntimeError)          the plan was sent before (see ``force=True``), or is
    │                                           being sent right now by another live process
    ├── JournalError                            the launch journal cannot be read or written (damaged,
    │                                           locked, read-only, disk full, from a newer toolkit)
    ├── PreflightError                          checked before sending: trigger, fields, resources,
    │                                           or made-up people bound for the real platform
    ├── TransportError (ConnectionError)        the request could not be sent or answered
    │   └── OutcomeUnknown                      it was sent, but its answer was lost
    ├── MissingExtraError (ImportError)         an optional part needs an extra not installed
    └── ApiError                                the platform answered ``error != 0``
        ├── AuthError                           401 / 403: token missing or wrong
        ├── RateLimited                         429: too many requests
        └── RequestTooLarge                     400 "request body too large"

Errors that come from an HTTP exchange carry ``.request`` (method and URL, never the
token) and ``.response`` (status code and a short, token-free body excerpt).

Example:
    >>> from toolkit.errors import ColumnNotFoundError, ToolkitError
    >>> err = ColumnNotFoundError("column 'emial' is not in the frame; did you mean 'email'?")
    >>> isinstance(err, (ToolkitError, KeyError, ValueError))
    True
    >>> str(err)
    "column 'emial' is not in the frame; did you mean 'email'?"
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AlreadyLaunched",
    "ApiError",
    "AuthError",
    "ColumnNotFoundError",
    "ConfigurationError",
    "InvalidArgumentError",
    "JournalError",
    "MissingExtraError",
    "OutcomeUnknown",
    "PreflightError",
    "RateLimited",
    "RequestInfo",
    "RequestTooLarge",
    "ResponseInfo",
    "SegmentFileError",
    "SerializationError",
    "SourceChangedError",
    "ToolkitError",
    "TransportError",
    "did_you_mean",
    "require_extra",
]


@dataclass(frozen=True)
class RequestInfo:
    """What was asked: never holds the token or the body."""

    method: str
    url: str


@dataclass(frozen=True)
class ResponseInfo:
    """What came back: the HTTP status and a short excerpt of the body."""

    status_code: int
    excerpt: str = ""


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose."""

    def __init__(
        self,
        message: str = "",
        *,
        request: RequestInfo | None = None,
        response: ResponseInfo | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request = request
        self.response = response

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(ToolkitError, ValueError):
    """A call the toolkit refuses before building or sending anything."""


class ColumnNotFoundError(InvalidArgumentError, KeyError):
    """A column named in a mapping or subscription is not in the frame."""

    # KeyError quotes its message in str(); keep the plain sentence instead.
    __str__ = ToolkitError.__str__


class ConfigurationError(InvalidArgumentError):
    """A required setting (such as ``TOOLKIT_API_URL``) is missing or malformed."""


class SegmentFileError(InvalidArgumentError):
    """A segment file (or uploaded data) cannot be read as a table.

    The message names the file and says what was tried: the encodings, the separator,
    the line whose field count differs from the header's, or that the file is empty.
    ``source`` is the file's name as given (or ``None`` for bytes).
    """

    def __init__(self, message: str = "", *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class SourceChangedError(InvalidArgumentError):
    """A streamed plan's source no longer gives the rows it was planned from: plan it again."""


class SerializationError(ToolkitError, TypeError):
    """A value (``content``, ``custom_data``, a cell) cannot be encoded in the body."""


class AlreadyLaunched(ToolkitError, RuntimeError):
    """Already sent for the same trigger and host: every batch of a plan, or one profile
    (``Client.import_and_start``); or the launch is being sent right now by another live
    process (it holds the launch's lease in the journal: follow it with ``client.resume``).

    ``previous`` holds the earlier send's journal record (label or send id, time, ids);
    ``sender`` the lease of the live process sending it right now, when that is the reason
    (``None`` otherwise). Pass ``force=True`` to send again on purpose.
    """

    def __init__(self, message: str = "", *, previous: object = None, sender: object = None) -> None:
        super().__init__(message)
        self.previous = previous
        self.sender = sender


class JournalError(ToolkitError):
    """The launch journal cannot be opened, read or written; the message names the file, what
    is wrong with it and what to do. Nothing is sent while the journal cannot record it.

    ``path`` is the journal file.
    """

    def __init__(self, message: str = "", *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class PreflightError(ToolkitError):
    """A launch was refused before anything was sent: the platform's catalog shows a problem
    (the trigger is missing, inactive or not an API-call trigger, a mapped profile field is
    not in the trigger's database, a resource is unknown or of another channel), or a plan of
    made-up people (the bundled sample) was about to go to the real platform.

    ``problems`` holds each problem (``code``, ``message``, ``severity``), in plain language.
    Fix them, or pass ``preflight=False`` (catalog checks) / ``allow_sample=True`` (made-up
    people) to ``Client.launch`` to send anyway.
    """

    def __init__(self, message: str = "", *, problems: Iterable[object] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class TransportError(ToolkitError, ConnectionError):
    """The request could not be sent, or its answer was lost."""


class OutcomeUnknown(TransportError):
    """The request went out but no usable answer came back (read timeout, connection
    reset after sending, HTTP 500 to a batch): the platform may or may not have acted on it.

    A batch in this state is journalled as ``unknown`` and never re-sent by itself;
    ``Launch.resend_unknown()`` sends it again once you have decided to.
    """


class MissingExtraError(ToolkitError, ImportError):
    """A part of the toolkit needs packages of an optional extra that is not installed.

    The core (plan, launch, journal, the ``toolkit`` command) needs none; the notebook views
    (:mod:`toolkit.view`) need ``toolkit[notebook]``. ``extra`` names the one to install,
    ``name`` (as for any ImportError) the first missing module. (The sandbox, which shares
    nothing of the toolkit but the contract, says ``toolkit[sandbox]`` in a plain
    ``ModuleNotFoundError``.)
    """

    def __init__(self, message: str = "", *, extra: str = "", name: str | None = None) -> None:
        super().__init__(message)
        self.extra = extra
        self.name = name


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Check that ``modules`` can be imported (without importing them), else raise
    :class:`MissingExtraError` naming the extra that brings them.

    Example:
        >>> require_extra("notebook", "toolkit.view", "json")
        >>> require_extra("notebook", "toolkit.view", "json", "no_such_module_xyz")
        Traceback (most recent call last):
        ...
        toolkit.errors.MissingExtraError: toolkit.view needs the 'notebook' extra (no_such_module_xyz is not installed): pip install 'toolkit[notebook]'
    """
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or blocked installation counts as missing
            found = False
        if not found:
            missing.append(module)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{feature} needs the {extra!r} extra ({', '.join(missing)} {verb} not installed): "
            f"pip install 'toolkit[{extra}]'",
            extra=extra,
            name=missing[0],
        )


class ApiError(ToolkitError):
    """The platform answered with ``error != 0`` (whatever the HTTP status).

    Attributes:
        code: the platform's ``error`` code (e.g. 400, 403).
        text: its ``error_text``.
        debug: its ``error_debug`` when given, else ``None``.
    """

    def __init__(
        self,
        code: int,
        text: str = "",
        debug: str | None = None,
        *,
        request: RequestInfo | None = None,
        response: ResponseInfo | None = None,
    ) -> None:
        message = f"platform error {code}: {text}" + (f" ({debug})" if debug else "")
        if request is not None:
            message += f" [{request.method} {request.url}]"
        super().__init__(message, request=request, response=response)
        self.code = code
        self.text = text
        self.debug = debug


class AuthError(ApiError):
    """The token is missing (401) or refused (403). Check ``TOOLKIT_API_TOKEN``."""


class RateLimited(ApiError):
    """The platform asked to slow down (429). ``retry_after`` is in seconds, if given."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class RequestTooLarge(ApiError):
    """The body was over the platform's limit: plan with a smaller ``max_bytes``."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` hint, or ``""`` when nothing is close.

    Example:
        >>> did_you_mean("emial", ["email", "phone"])
        "; did you mean 'email'?"
        >>> did_you_mean("zzz", ["email"])
        ''
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
