"""Every table of llmops on one metadata: the core tables and those of each service area.

Alembic's environment and the schema test import this, so the migrations are compared with the
whole schema; code that only needs some tables imports their own module.
"""

from llmops.alerts import tables as alert_tables
from llmops.annotation import tables as annotation_tables
from llmops.audit import tables as audit_tables
from llmops.credentials import tables as credential_tables
from llmops.datasets import tables as dataset_tables
from llmops.deployments import tables as deployment_tables
from llmops.drift import tables as drift_tables
from llmops.evals import tables as eval_tables
from llmops.guardrails import tables as guardrail_tables
from llmops.jobs import tables as job_tables
from llmops.limits import tables as limit_tables
from llmops.monitoring import tables as monitoring_tables
from llmops.prompts import tables as prompt_tables
from llmops.registry import tables as registry_tables
from llmops.store.tables import metadata
from llmops.teams import tables as team_tables
from llmops.tracing.otel import tables as otel_tables
from llmops.training import tables as training_tables

__all__ = [
    "alert_tables",
    "annotation_tables",
    "audit_tables",
    "credential_tables",
    "dataset_tables",
    "deployment_tables",
    "drift_tables",
    "eval_tables",
    "guardrail_tables",
    "job_tables",
    "limit_tables",
    "metadata",
    "monitoring_tables",
    "otel_tables",
    "prompt_tables",
    "registry_tables",
    "team_tables",
    "training_tables",
]
