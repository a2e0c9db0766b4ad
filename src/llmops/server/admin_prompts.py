"""Admin routes for prompts (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from llmops.services import Services


def prompt_routes(services: Services) -> APIRouter:
    return APIRouter()
