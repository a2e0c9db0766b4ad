"""Deployment fixtures: a registry with two servable versions of ``support-model`` and the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from llmops.datasets.service import DatasetService
from llmops.deployments import DeploymentService
from llmops.evals.service import EvalService
from llmops.registry import ArtefactStore, RegistryService

SERVING = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture
def registry(db: Engine, tmp_path: Path) -> RegistryService:
    registry = RegistryService(db, ArtefactStore(tmp_path / "artefacts"), tmp_path / "cache")
    for version in (1, 2, 3):
        registry.register("support-model", serving={**SERVING, "model": f"v{version}"})
    return registry


@pytest.fixture
def deployments(db: Engine, registry: RegistryService) -> DeploymentService:
    return DeploymentService(
        db, registry, evals=EvalService(db, DatasetService(db)), configured=lambda: ["support"]
    )
