"""Pydantic models that document the routes on ``/docs`` (requests are parsed by hand,
since the same route takes JSON or XML; these models never validate a request).

Example:
    >>> sorted(BatchRequest.model_json_schema()["required"])
    ['data', 'trigger_id']
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from toolkit.core.contract import Channel, MatchingMode, TaskState

__all__ = [
    "Attachment",
    "BatchRequest",
    "ErrorEnvelope",
    "ProfileImported",
    "ProfileRecord",
    "SendRecord",
    "SingleRequest",
    "StatusRequest",
    "TaskAccepted",
    "TaskRecord",
    "TaskStatus",
]

#: The task states the sandbox reports (the platform's docs also know ``success`` and ``error``).
SandboxTaskState = Literal[TaskState.QUEUED, TaskState.PROCESSING, TaskState.COMPLETED, TaskState.FAILED]


class Subscription(BaseModel):
    """A subscription to a channel; the contact field depends on the channel."""

    model_config = ConfigDict(extra="allow")
    channel: Channel
    email: str | None = Field(None, description="contact of an email subscription")
    phone: str | None = Field(None, description="contact of sms/phone/viber/whatsapp, '+' and 8-15 digits")
    subscription_id: str | None = Field(None, description="contact of push/notify")
    provider: str | None = None
    cc_data: dict[str, Any] | None = Field(None, description="contact of telegram_bot")
    resource_id: int | None = None
    custom_fields: dict[str, Any] | None = None


class Profile(BaseModel):
    """Profile fields: system fields (email, phones, _fname, _bdate, _ip, ...) and custom ones."""

    model_config = ConfigDict(extra="allow")
    email: str | None = None
    phones: str | list[str] | None = Field(None, description="international format, e.g. +79000000000")
    subscriptions: list[Subscription] | None = None


class ProfileItem(BaseModel):
    """One element of the batch's ``data`` list (in XML: one ``<data>`` holding the fields)."""

    data: Profile


class Attachment(BaseModel):
    """An email attachment as a base64 data URI."""

    data: str = Field(
        description="data:<mime>;base64,<payload>", examples=["data:text/csv;base64,5LuK5pel44GvCg=="]
    )
    name: str


class _ImportCommon(BaseModel):
    model_config = ConfigDict(extra="allow")
    token: str | None = Field(None, description="API token (or send 'Authorization: Bearer <token>')")
    trigger_id: int
    matching: MatchingMode = MatchingMode.EMAIL
    field_name: str | None = Field(None, description="required for matching custom/custom_sub")
    resource_id: int | None = None
    skip_triggers: bool = False
    skip_invalid_subscriptions: bool = False
    detect_geo: bool = False
    custom_data: dict[str, Any] | None = None
    content: dict[str, Any] | None = None
    attach: list[Attachment] | None = None
    format: Literal["json", "xml"] | None = Field(None, description="answer format; default: the request's")


class BatchRequest(_ImportCommon):
    """``import_and_start_batch_task``: many profiles, answered at once with a task id."""

    data: list[ProfileItem]


class SingleRequest(_ImportCommon):
    """``import_and_start``: one profile, imported before the answer."""

    data: Profile | ProfileItem


class StatusRequest(BaseModel):
    """``tasks/status``."""

    token: str | None = None
    task_id: str
    format: Literal["json", "xml"] | None = None


class ErrorEnvelope(BaseModel):
    """The platform's error answer; the HTTP status equals ``error``."""

    error: int = Field(examples=[400])
    error_text: str
    error_debug: str | None = None


class TaskAccepted(BaseModel):
    """A batch task was accepted."""

    error: int = 0
    error_text: str = "Successful operation"
    task_id: str


class ProfileImported(BaseModel):
    """A single profile was imported."""

    error: int = 0
    error_text: str = "Successful operation"
    profile_id: str


class ProfileResult(BaseModel):
    """One profile's outcome: ``profile_id``, or ``error`` and ``error_text``."""

    profile_id: str | None = None
    error: int | None = None
    error_text: str | None = None


class TaskResult(BaseModel):
    """Present once the task is over."""

    error: int
    error_text: str
    result: list[ProfileResult] | None = Field(None, description="one item per profile, in input order")


class TaskData(BaseModel):
    """A task's state."""

    status: SandboxTaskState
    progress: int = Field(ge=0, le=100)
    result: TaskResult | None = None


class TaskStatus(BaseModel):
    """The ``tasks/status`` answer."""

    data: TaskData
    error: int = 0
    error_text: str = "Successful operation"


class SendRecord(BaseModel):
    """One trigger send logged by the sandbox."""

    id: int
    trigger_id: int
    profile_id: str
    task_id: str | None
    content: dict[str, Any] | None
    custom_data: dict[str, Any] | None
    attachments: list[dict[str, Any]] = Field(description="name and decoded size of each attachment")
    time: str


class ProfileRecord(BaseModel):
    """A stored profile."""

    profile_id: str
    fields: dict[str, Any]
    subscriptions: list[dict[str, Any]]
    created_at: str
    updated_at: str


class TaskRecord(BaseModel):
    """A task with its counts."""

    task_id: str
    status: str
    trigger_id: int
    matching: str
    total: int
    done: int
    imported: int
    failed: int
    error_text: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
