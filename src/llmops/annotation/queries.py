"""The SQL conditions that say which slots of an item are taken and which item to hand out next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select

from llmops.annotation.tables import annotation_answers, annotation_assignments, annotation_items


def answered_by(annotator: Any) -> Any:
    """SQL: ``annotator`` has answered the item of the assignment being looked at."""
    return exists().where(
        annotation_answers.c.item_id == annotation_assignments.c.item_id,
        annotation_answers.c.annotator == annotator,
    )


def live_leases(now: datetime) -> Any:
    """SQL conditions on an assignment: handed out, not passed on, not expired, not yet answered."""
    return and_(
        annotation_assignments.c.skipped_at.is_(None),
        annotation_assignments.c.expires_at > now,
        ~answered_by(annotation_assignments.c.annotator),
    )


def slots_taken(item_id: Any, now: datetime) -> Any:
    """SQL: answers on the item plus live leases on it (the slots nobody else may take)."""
    answers = (
        select(func.count()).select_from(annotation_answers).where(annotation_answers.c.item_id == item_id)
    )
    leases = (
        select(func.count())
        .select_from(annotation_assignments)
        .where(annotation_assignments.c.item_id == item_id, live_leases(now))
    )
    return answers.scalar_subquery() + leases.scalar_subquery()


def held_item(queue: str, annotator: str, now: datetime) -> Any:
    """The first item ``annotator`` holds a live lease on and has not answered."""
    return (
        select(annotation_items)
        .join(annotation_assignments, annotation_assignments.c.item_id == annotation_items.c.id)
        .where(
            annotation_assignments.c.queue == queue,
            annotation_assignments.c.annotator == annotator,
            live_leases(now),
        )
        .order_by(annotation_items.c.position)
        .limit(1)
    )


def free_item(queue: str, annotator: str, now: datetime, needed: int) -> Any:
    """The first item never handed to ``annotator`` with fewer than ``needed`` slots taken."""
    handed = exists().where(
        annotation_assignments.c.item_id == annotation_items.c.id,
        annotation_assignments.c.annotator == annotator,
    )
    return (
        select(annotation_items)
        .where(
            annotation_items.c.queue == queue,
            ~handed,
            slots_taken(annotation_items.c.id, now) < needed,
        )
        .order_by(annotation_items.c.position)
        .limit(1)
    )
