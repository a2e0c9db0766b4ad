"""Admin routes for experiments (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from llmops.services import Services


def experiment_routes(services: Services) -> APIRouter:
    return APIRouter()
