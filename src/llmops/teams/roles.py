"""Roles and what each may do: the one table the admin API's permission check reads.

A permission is ``area:read`` or ``area:write``. ``viewer`` reads its own team's traces, prompts,
datasets and evaluations (and what every team shares: models, the registry, deployments);
``editor`` also changes its team's things, tries prompts in the playground and uses the PII
analyser; ``admin`` does everything, for all teams; ``inference`` keys use /v1 and, on /api, may
only attach feedback to traces of their own team (an application reporting its users' thumbs).
"""

from __future__ import annotations

from typing import Literal

Role = Literal["inference", "viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("inference", "viewer", "editor", "admin")

# Areas whose things belong to a team: viewers read their team's, editors change them.
TEAM_AREAS = ("traces", "prompts", "datasets", "evals", "annotation")
# Areas every team shares: viewers and editors read them, admins change them.
SHARED_AREAS = ("models", "registry", "deployments", "finetune", "guardrails", "alerts")
# Areas only admins see.
ADMIN_AREAS = ("keys", "teams", "credentials", "audit", "gateway", "jobs")

_READ = frozenset(f"{area}:read" for area in (*TEAM_AREAS, *SHARED_AREAS))
_WRITE = frozenset(f"{area}:write" for area in TEAM_AREAS) | {"feedback:write", "playground:use", "pii:use"}
_EVERYTHING = (
    frozenset(
        f"{area}:{action}"
        for area in (*TEAM_AREAS, *SHARED_AREAS, *ADMIN_AREAS)
        for action in ("read", "write")
    )
    | _WRITE
)

GRANTS: dict[str, frozenset[str]] = {
    "inference": frozenset({"feedback:write"}),
    "viewer": _READ,
    "editor": _READ | _WRITE,
    "admin": _EVERYTHING,
}


def permits(role: str, permission: str) -> bool:
    return permission in GRANTS.get(role, frozenset())


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    return role
