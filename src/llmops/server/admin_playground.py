"""Admin routes for playground (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from llmops.services import Services


def playground_routes(services: Services) -> APIRouter:
    return APIRouter()
