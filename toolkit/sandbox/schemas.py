"""Pydantic models that document the routes on ``/docs`` (requests are parsed by hand,
since the same route takes JSON or XML; these models never validate a request).

Example:
    >>> sorted(BatchRequest.model_json_schema()["required"])
    ['data', 'trigger_id']
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonValue

from toolkit.core.contract import MATCHING_MODES, Channel, MatchingMode, TaskState

from .envelope import MAX_ID
from .validators import DATA_URI_SCHEMA_PATTERN

__all__ = [
    "Attachment",
    "BatchRequest",
    "DatabasesList",
    "ErrorEnvelope",
    "FieldsList",
    "IdRequest",
    "PageRequest",
    "ProfileImported",
    "ProfileRecord",
    "ResourceAnswer",
    "ResourcesList",
    "SendRecord",
    "SingleRequest",
    "StatusRequest",
    "TaskAccepted",
    "TaskRecord",
    "TaskStatus",
    "TriggerAnswer",
    "TriggersList",
    "TriggersListRequest",
    "json_body",
    "request_doc",
    "settle_validation_answers",
]

#: A positive 64-bit id (trigger, resource, database), as the sandbox checks it.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

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
    """Profile fields: system fields (email, phones, _fname, _bdate, _ip, ...) and custom ones.

    Checked one profile at a time (an invalid value fails that profile alone, in the task's
    results), so the envelope takes any object here; the fields below say what a valid profile
    holds."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "properties": {
                "email": {"description": "an email address"},
                "phones": {"description": "international format, e.g. +79000000000 (or a list of them)"},
                "subscriptions": {"description": "a list of subscriptions: channel, contact, resource_id"},
            }
        },
    )


class ProfileItem(BaseModel):
    """One element of the batch's ``data`` list (in XML: one ``<data>`` holding the fields)."""

    model_config = ConfigDict(extra="allow")
    data: Profile


class Attachment(BaseModel):
    """An email attachment as a base64 data URI."""

    model_config = ConfigDict(extra="allow")
    data: str = Field(
        description="data:<mime>;base64,<payload>",
        examples=["data:text/csv;base64,5LuK5pel44GvCg=="],
        pattern=DATA_URI_SCHEMA_PATTERN,
    )
    name: str = Field(min_length=1, pattern=r"\S", description="the file name the recipient sees")


#: The matching modes that name the custom field holding the key (``field_name`` is required).
_NEEDS_FIELD: list[JsonValue] = [str(m) for m, rule in MATCHING_MODES.items() if rule.needs_match_field]


class _ImportCommon(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "if": {"properties": {"matching": {"enum": _NEEDS_FIELD}}, "required": ["matching"]},
            "then": {
                "properties": {"field_name": {"type": "string", "pattern": r"\S"}},
                "required": ["field_name"],
            },
        },
    )
    token: str | None = Field(None, description="API token (or send 'Authorization: Bearer <token>')")
    trigger_id: Id = Field(description="an active trigger campaign of the API-call type")
    matching: MatchingMode = MatchingMode.EMAIL
    field_name: str | None = Field(None, description="required for matching custom/custom_sub")
    resource_id: Id | None = None
    skip_triggers: bool | None = False
    skip_invalid_subscriptions: bool | None = False
    detect_geo: bool | None = False
    custom_data: dict[str, Any] | None = None
    content: dict[str, Any] | None = None
    attach: list[Attachment] | None = None
    format: Literal["json", "xml"] | None = Field(None, description="answer format; default: the request's")


class BatchRequest(_ImportCommon):
    """``import_and_start_batch_task``: many profiles, answered at once with a task id."""

    data: list[ProfileItem] = Field(min_length=1)


class SingleRequest(_ImportCommon):
    """``import_and_start``: one profile, imported before the answer (also taken: ``{"data": {...}}``,
    or a list of exactly one profile)."""

    data: Profile | Annotated[list[Profile], Field(min_length=1, max_length=1)]


class StatusRequest(BaseModel):
    """``tasks/status``."""

    model_config = ConfigDict(extra="allow")
    token: str | None = None
    task_id: str = Field(min_length=1)
    format: Literal["json", "xml"] | None = None


class _CatalogRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    token: str | None = None
    format: Literal["json", "xml"] | None = None


class PageRequest(_CatalogRequest):
    """A list method: ``from_id`` (the first id; default 1), ``limit`` (default 1000)."""

    from_id: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    limit: Id | None = None


class TriggersListRequest(PageRequest):
    """``campaigns/triggers/list``; ``is_active``: only the active campaigns."""

    is_active: bool | None = None


class IdRequest(_CatalogRequest):
    """A get method: the item's ``id`` (``databases/fields`` also reads ``db_id``)."""

    id: Id


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


class _Listed(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    name: str


class TriggersList(BaseModel):
    """``campaigns/triggers/list``: ``data`` items carry ``type`` and ``is_active``."""

    data: list[_Listed]
    error: int = 0
    error_text: str = "Successful operation"
    total_count: int


class TriggerData(BaseModel):
    """A trigger campaign (``campaigns/triggers/get``)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    is_active: bool
    trigger_type: str = Field(description="'api_call' for a trigger an import can start")
    list_id: int = Field(description="its database")
    resource_id: int
    send_channel: str


class TriggerAnswer(BaseModel):
    """``campaigns/triggers/get``."""

    data: TriggerData
    error: int = 0
    error_text: str = "Successful operation"


class DatabasesList(BaseModel):
    """``databases/list``."""

    data: list[_Listed]
    error: int = 0
    error_text: str = "Successful operation"
    next_from_id: int
    total_count: int


class FieldData(BaseModel):
    """A profile field of a database."""

    name: str
    type: str
    is_system: bool


class FieldsList(BaseModel):
    """``databases/fields``: system fields first."""

    data: list[FieldData]
    error: int = 0
    error_text: str = "Successful operation"


class ResourcesList(BaseModel):
    """``resources/list`` (the channels are in ``resources/get``)."""

    data: list[_Listed]
    error: int = 0
    error_text: str = "Successful operation"
    next_from_id: int
    total_count: int


class ResourceData(BaseModel):
    """A resource (``resources/get``)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    channels: list[str]
    dbs_ids: list[int]


class ResourceAnswer(BaseModel):
    """``resources/get``."""

    data: ResourceData
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


# --- the OpenAPI document ----------------------------------------------------------------------
def _without_null(schema: Any) -> Any:
    """The schema as XML sends it: no ``null`` alternatives (an XML element holds text, or is left
    out; a generator would write null as the text "null")."""
    if isinstance(schema, list):
        return [_without_null(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _without_null(value) for key, value in schema.items()}
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            del out["anyOf"]
            out.update(kept[0])
        else:
            out["anyOf"] = kept
    return out


def request_doc(
    model: type[BaseModel], example_xml: str, defs: dict[str, Any], matching: Sequence[str]
) -> dict[str, Any]:
    """The ``requestBody`` of a platform route: its JSON schema, and the same shape for XML (root
    ``<xml>``; a batch's profiles are repeated ``<data>`` elements holding the fields). ``matching``
    lists the modes the sandbox accepts. ``defs`` collects the shared component schemas.

    Example:
        >>> doc = request_doc(StatusRequest, "<xml/>", {}, ["email"])
        >>> sorted(doc["requestBody"]["content"]), doc["requestBody"]["content"]["application/xml"]["schema"]["xml"]
        (['application/json', 'application/xml'], {'name': 'xml'})
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    if "matching" in schema.get("properties", {}):
        schema["properties"]["matching"] = {
            "anyOf": [{"type": "string", "enum": list(matching)}, {"type": "null"}],
            "default": "email",
            "description": "how a profile is found (null or absent: email)",
        }
    xml = _without_null(copy.deepcopy(schema))
    data = xml.get("properties", {}).get("data", {})
    if data.get("items") == {"$ref": "#/components/schemas/ProfileItem"}:
        data["items"] = {"$ref": "#/components/schemas/Profile"}  # <data> holds the fields itself
    elif "anyOf" in data:  # the single route: one <data> element of fields
        xml["properties"]["data"] = {"$ref": "#/components/schemas/Profile"}
    xml["xml"] = {"name": "xml"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/xml": {"schema": xml, "example": example_xml},
            },
        }
    }


def json_body(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The ``requestBody`` of a route that takes a JSON document of ``model``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(schema.pop("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def settle_validation_answers(doc: dict[str, Any]) -> dict[str, Any]:
    """The sandbox answers a bad parameter with the platform's 400 envelope, never FastAPI's 422:
    say so in the document (every ``422`` becomes the ``400`` it is).

    Example:
        >>> doc = {"paths": {"/x": {"get": {"responses": {"422": {}}}}}, "components": {"schemas": {}}}
        >>> settle_validation_answers(doc)["paths"]["/x"]["get"]["responses"]
        {'400': {'description': 'A parameter is missing, out of range or of the wrong type', 'content': {'application/json': {'schema': {'$ref': '#/components/schemas/ErrorEnvelope'}}}}}
    """
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault(
                    "400",
                    {
                        "description": "A parameter is missing, out of range or of the wrong type",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
                        },
                    },
                )
    found = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        found.pop(unused, None)
    found.setdefault("ErrorEnvelope", ErrorEnvelope.model_json_schema())
    return doc
