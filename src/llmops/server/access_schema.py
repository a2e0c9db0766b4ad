"""Bodies and answers of the key and team routes of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from llmops.gateway.keys import NAME_PATTERN
from llmops.limits.policy import MAX_COUNT, MAX_USD
from llmops.server.admin_schema import NO_NUL
from llmops.teams.roles import Role


def _no_bool(value: Any) -> Any:
    """JSON's true/false are not numbers here (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return value


Count = Annotated[int, Interval(ge=1, le=MAX_COUNT), BeforeValidator(_no_bool)]
Usd = Annotated[float, Interval(ge=0, le=MAX_USD), BeforeValidator(_no_bool)]
Seconds = Annotated[float, Interval(ge=0, le=366 * 86400), BeforeValidator(_no_bool)]
# metadata are labels (owner, app, cost centre): text both databases store as it is (no NUL)
LabelName = Annotated[str, Field(max_length=100, pattern=NO_NUL)]
LabelValue = Annotated[str, Field(max_length=1000, pattern=NO_NUL)]
RoleName = Role
Pattern = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
_PATTERNS = Field(
    default=None,
    max_length=200,
    description="Model names or glob patterns (`gpt-*`) it may use; null: every model.",
)


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: Usd | None = Field(default=None, description="USD per UTC day.")
    month: Usd | None = Field(default=None, description="USD per UTC calendar month.")
    total: Usd | None = Field(default=None, description="USD in all.")


class _LimitsIn(BaseModel):
    rpm: Count | None = Field(default=None, description="Requests per minute (sliding window).")
    tpm: Count | None = Field(default=None, description="Tokens per minute (sliding window).")
    budget: Budget | None = Field(default=None, description="Spend limits in USD.")
    metadata: dict[LabelName, LabelValue] | None = Field(
        default=None, max_length=50, description="Labels as text (owner, app, cost centre, ...)."
    )


class KeyCreateIn(_LimitsIn):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=NAME_PATTERN,
        description="Unique among active keys; no control characters, not only spaces (trimmed).",
    )
    role: RoleName | None = Field(default=None, description="What the key may do (default inference).")
    scope: RoleName | None = Field(default=None, description="Former name of `role`.")
    team: str | None = Field(default=None, min_length=1, max_length=200, description="Team id or name.")
    models: list[Pattern] | None = _PATTERNS
    expires_at: datetime | None = Field(default=None, description="When it stops working (future).")


class KeyUpdateIn(_LimitsIn):
    model_config = ConfigDict(extra="forbid")

    models: list[Pattern] | None = _PATTERNS
    expires_at: datetime | None = Field(default=None, description="When it stops working.")


class KeyRotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Seconds | None = Field(
        default=None,
        description="How long the previous secret keeps working (default: key_rotation_grace_seconds).",
    )


class KeyOut(BaseModel):
    id: str
    name: str
    role: str
    scope: str = Field(description="Same as `role` (its former name).")
    prefix: str
    team_id: str | None
    team: str | None = None
    models: list[str] | None
    expires_at: datetime | None
    rpm: int | None
    tpm: int | None
    budget: dict[str, float]
    metadata: dict[str, Any]
    spend: dict[str, float] = Field(default_factory=dict, description="USD spent today, this month, in all.")
    created_at: datetime
    revoked_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None


class KeyCreatedOut(KeyOut):
    secret: str = Field(description="Shown once; only its hash is stored.")


class TeamCreateIn(_LimitsIn):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN, description="Unique team name.")
    models: list[Pattern] | None = _PATTERNS


class TeamUpdateIn(_LimitsIn):
    model_config = ConfigDict(extra="forbid")

    models: list[Pattern] | None = _PATTERNS


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(
        min_length=1, max_length=200, pattern=NAME_PATTERN, description="A person (e-mail, login)."
    )
    role: RoleName = "viewer"


class MemberOut(BaseModel):
    user: str
    role: str
    added_at: datetime


class TeamOut(BaseModel):
    id: str
    name: str
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    budget: dict[str, float]
    metadata: dict[str, Any]
    created_at: datetime
    members: list[MemberOut]
    key_count: int
    spend: dict[str, float]
