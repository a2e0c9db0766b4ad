"""Managed deployments: registry versions behind public model names, canary roll-out, automatic rollback."""

from llmops.deployments.controller import CanaryController
from llmops.deployments.guards import (
    Assessment,
    Guard,
    GuardContext,
    GuardRegistry,
    InvalidGuard,
    Verdict,
    assess,
)
from llmops.deployments.models import ServingSource, managed_models, traffic_percent
from llmops.deployments.repository import (
    DeploymentConflict,
    DeploymentEvent,
    DeploymentInfo,
    DeploymentNotFound,
    StaleRevision,
)
from llmops.deployments.service import DeploymentService, InvalidDeployment, Rollout
from llmops.deployments.watcher import DeploymentWatcher
from llmops.deployments.window import VersionFigures, Window, read_window

__all__ = [
    "Assessment",
    "CanaryController",
    "DeploymentConflict",
    "DeploymentEvent",
    "DeploymentInfo",
    "DeploymentNotFound",
    "DeploymentService",
    "DeploymentWatcher",
    "Guard",
    "GuardContext",
    "GuardRegistry",
    "InvalidDeployment",
    "InvalidGuard",
    "Rollout",
    "ServingSource",
    "StaleRevision",
    "VersionFigures",
    "Verdict",
    "Window",
    "assess",
    "managed_models",
    "read_window",
    "traffic_percent",
]
