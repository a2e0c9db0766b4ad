"""The team-owned services as the caller of an admin request sees them: route parameters.

A route that takes ``prompts: TeamPrompts`` gets the prompt registry as the caller's team sees it
(:func:`~llmops.server.admin_auth.team_scope`: everything for an admin, its team's things for a
team's key, things of no team for a key of no team); another team's prompt is then "not found" and
what the route creates belongs to the caller's team. Each of these depends on
:data:`~llmops.server.admin_auth.Caller`, so a route taking one is authorised as well (the caller is
checked once per request however many of them a route takes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llmops.annotation.service import AnnotationService
from llmops.datasets.service import DatasetService
from llmops.evals.service import EvalService
from llmops.prompts.experiments import ExperimentService
from llmops.prompts.services import PromptService
from llmops.server.admin_auth import Caller, services_of, team_scope


async def _prompts(request: Request, principal: Caller) -> PromptService:
    return services_of(request).store.prompts.for_team(team_scope(principal))


async def _experiments(request: Request, principal: Caller) -> ExperimentService:
    return services_of(request).store.experiments.for_team(team_scope(principal))


async def _datasets(request: Request, principal: Caller) -> DatasetService:
    return services_of(request).store.datasets.for_team(team_scope(principal))


async def _evals(request: Request, principal: Caller) -> EvalService:
    return services_of(request).store.evals.for_team(team_scope(principal))


async def _annotation(request: Request, principal: Caller) -> AnnotationService:
    return services_of(request).store.annotation.for_team(team_scope(principal))


TeamPrompts = Annotated[PromptService, Depends(_prompts)]
TeamExperiments = Annotated[ExperimentService, Depends(_experiments)]
TeamDatasets = Annotated[DatasetService, Depends(_datasets)]
TeamEvals = Annotated[EvalService, Depends(_evals)]
TeamAnnotation = Annotated[AnnotationService, Depends(_annotation)]
