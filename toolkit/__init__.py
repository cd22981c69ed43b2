"""toolkit: audience segments to validated, journaled trigger-campaign launches.

The public API, in the order an analyst meets it::

    segment = toolkit.read_segment("customers.csv")           # any encoding, CSV/Excel/Parquet
    segment = toolkit.sample_customers(5000)                  # or the bundled sample
    mapping = toolkit.Mapping({"email": "email", "first_name": "_fname"},
                              subscriptions=[toolkit.Subscription("email", "email", 21)])
    plan = toolkit.plan(segment, mapping, toolkit.Trigger(96))  # validate, normalize, split
    launch = toolkit.Client.from_env().launch(plan)           # send each batch exactly once
    launch.wait(); launch.results(join=True)                  # per-profile results

Errors are one tree under :class:`ToolkitError` (see :mod:`toolkit.errors`).

Example:
    >>> import toolkit
    >>> p = toolkit.plan(toolkit.sample_customers(50, kind="polars"),
    ...                  toolkit.Mapping({"email": "email"}), toolkit.Trigger(96))
    >>> p.n_rows
    50
"""

from toolkit._version import __version__
from toolkit.core.mapping import Attachment, Mapping, Subscription, Trigger
from toolkit.core.plan import Batch, Plan, plan
from toolkit.core.sample import sample_customers
from toolkit.errors import (
    AlreadyLaunched,
    ApiError,
    AuthError,
    ColumnNotFoundError,
    ConfigurationError,
    InvalidArgumentError,
    JournalError,
    OutcomeUnknown,
    PreflightError,
    RateLimited,
    RequestTooLarge,
    SegmentFileError,
    SerializationError,
    ToolkitError,
    TransportError,
)
from toolkit.io.segments import read_segment
from toolkit.send.client import Client
from toolkit.send.launch import Launch

__all__ = [
    "AlreadyLaunched",
    "ApiError",
    "Attachment",
    "AuthError",
    "Batch",
    "Client",
    "ColumnNotFoundError",
    "ConfigurationError",
    "InvalidArgumentError",
    "JournalError",
    "Launch",
    "Mapping",
    "OutcomeUnknown",
    "Plan",
    "PreflightError",
    "RateLimited",
    "RequestTooLarge",
    "SegmentFileError",
    "SerializationError",
    "Subscription",
    "ToolkitError",
    "TransportError",
    "Trigger",
    "__version__",
    "plan",
    "read_segment",
    "sample_customers",
]
