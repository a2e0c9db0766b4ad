"""Every setting of llmops, declared once.

A value is resolved as: explicit argument > environment (``LLMOPS_*``) > config file
(``llmops.yaml``) > default. The config file is found at ``--config`` / ``LLMOPS_CONFIG``,
else ``./llmops.yaml``, else ``$LLMOPS_HOME/llmops.yaml`` (``~/.llmops/llmops.yaml``).
Its top-level keys are the setting names below (without the prefix) plus ``models:``,
the list of public model names the gateway serves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from llmops.alerts.config import AlertRuleConfig, ChannelConfig
from llmops.guardrails.config import GuardrailConfig
from llmops.model_config import DeploymentConfig, ModelConfig

__all__ = [
    "CONFIG_FILE_NAME",
    "DeploymentConfig",
    "ModelConfig",
    "Settings",
    "SettingsError",
    "load_settings",
]

CONFIG_FILE_NAME = "llmops.yaml"


class SettingsError(Exception):
    """The configuration cannot be used; the message is one readable line."""


def _default_home() -> Path:
    return Path(os.environ.get("LLMOPS_HOME") or Path.home() / ".llmops")


class Settings(BaseSettings):
    """Process-wide configuration, built once at start and passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="LLMOPS_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=_default_home, description="Directory for the database and files.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<home>/llmops.db. Postgres: postgresql+psycopg://...",
    )
    config: Path | None = Field(
        default=None, description="The llmops.yaml to read (else ./llmops.yaml, else <home>/llmops.yaml)."
    )
    host: str = Field(default="127.0.0.1", description="Address `llmops serve` binds.")
    port: int = Field(default=4000, ge=0, le=65535, description="Port `llmops serve` binds.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Server log level."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    upstream_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Total time for one upstream call."
    )
    upstream_connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time to open a connection."
    )
    upstream_first_token_timeout_seconds: float | None = Field(
        default=None, gt=0, description="Time to the first chunk of a stream (unset: only the total applies)."
    )
    upstream_max_connections: int = Field(default=1000, ge=1, description="Pooled keep-alive connections.")
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by replicas (response cache, rate limits and budgets), "
        "e.g. redis://127.0.0.1:6379/0.",
    )
    cache_max_entries: int = Field(
        default=10_000, ge=1, description="Answers kept by the in-memory response cache (one replica)."
    )
    semantic_cache_max_entries: int = Field(
        default=100_000, ge=1, description="Embeddings kept by the semantic cache index of one replica."
    )
    trace_queue_size: int = Field(default=100_000, ge=1, description="Traces held in memory before drops.")
    trace_batch_size: int = Field(
        default=100,
        ge=1,
        description="Traces written per statement (smaller batches hold the GIL for less).",
    )
    trace_flush_seconds: float = Field(
        default=0.25, gt=0, description="Longest wait before a batch is written."
    )
    trace_overflow: Literal["drop", "block"] = Field(
        default="drop",
        description="When the trace queue is full: drop (counted) or block (requests wait, nothing lost).",
    )
    trace_content: bool = Field(
        default=True, description="Store request messages and response text in traces."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP URL every trace is exported to as a GenAI span, e.g. "
        "http://127.0.0.1:4318/v1/traces (a URL without a path gets /v1/traces); unset: no export.",
    )
    otlp_headers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Headers of each OTLP export (e.g. an API key): a mapping, JSON, "
        "or key=value,key2=value2.",
    )
    otlp_protocol: Literal["http/protobuf", "http/json"] = Field(
        default="http/protobuf", description="Encoding of OTLP exports."
    )
    otlp_batch_size: int = Field(default=512, ge=1, le=100_000, description="Spans per OTLP export request.")
    otlp_flush_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait before queued spans are exported."
    )
    otlp_queue_size: int = Field(
        default=20_000, ge=1, description="Spans held for export before drops (counted)."
    )
    otlp_timeout_seconds: float = Field(default=10.0, gt=0, description="Time for one OTLP export request.")
    otlp_service_name: str = Field(
        default="llmops", min_length=1, description="service.name of the exported spans' resource."
    )
    otlp_content: bool = Field(
        default=False,
        description="Export request messages and response text too (gen_ai.input.messages, "
        "gen_ai.output.messages).",
    )
    key_cache_seconds: float = Field(default=30.0, gt=0, description="How long a checked API key is trusted.")
    auth_failures_per_minute: int = Field(
        default=20,
        ge=0,
        description="Failed authentications per minute from one address before it gets 429 (0: off).",
    )
    key_rotation_grace_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How long a rotated key's previous secret still works (default one day).",
    )
    prompt_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each replica checks the prompt registry for changes (cached prompts dropped).",
    )
    local_threads: int | None = Field(default=None, ge=1, description="CPU threads for the embedded model.")
    local_context_tokens: int = Field(
        default=2048, ge=256, description="Context window of the embedded model."
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Master key that encrypts stored credentials: base64 of 32 random bytes "
        "(else the key file is used).",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="File holding the master key (mode 0600); default <home>/master.key, "
        "created on first need.",
    )
    pii_salt: str | None = Field(
        default=None,
        description="Secret salt of the PII `hash` strategy (stable pseudonyms); keep it out of datasets.",
    )
    scorer_modules: tuple[str, ...] = Field(
        default=(),
        description="Python files or modules with @scorer functions, loaded for every evaluation run.",
    )
    finetune_on_server: bool = Field(
        default=True,
        description="Let POST /api/finetune train on this server; turn off on replicas whose CPU is for /v1.",
    )
    artefact_store: str | None = Field(
        default=None,
        description="Where registered model versions keep their files: a folder, file://, memory:// or "
        "s3://bucket/prefix (needs s3fs); default <home>/artefacts.",
    )
    deployment_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each replica looks for changed deployments (then rebuilds its models).",
    )
    deployment_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often each replica judges running canaries against their guard rules.",
    )
    rate_limit_on_redis_error: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open",
        description="Rate limits (rpm/tpm) when Redis cannot be reached: admit uncounted, or answer 503.",
    )
    budget_on_redis_error: Literal["fail_open", "fail_closed"] = Field(
        default="fail_closed",
        description="Budgets when Redis (or the spend table, to seed a counter) cannot be reached: "
        "admit uncounted, or answer 503.",
    )
    budget_alert_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Share of a budget whose crossing by settled spend is logged and counted as an alert.",
    )
    spend_flush_seconds: float = Field(
        default=2.0, gt=0, description="How often settled spend is added to the database's spend table."
    )
    limits_default_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="Completion tokens a request without max_tokens reserves against tpm and budgets.",
    )
    limits_hold_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How long a budget reservation holds when its request is never settled "
        "(its replica crashed).",
    )
    guardrails: tuple[GuardrailConfig, ...] = Field(
        default=(),
        description="Guardrail rules (see docs/guardrails.md); more can be added with /api/guardrails.",
    )
    guardrail_modules: tuple[str, ...] = Field(
        default=(),
        description="Python files or modules with custom guardrails (@guardrail functions, "
        "Guardrail classes).",
    )
    guardrail_stream_window: int = Field(
        default=128,
        ge=0,
        le=100_000,
        description="Characters of a streamed answer held back so that output guardrails see them first.",
    )
    guardrail_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a replica looks for guardrail changes made through another replica's API.",
    )
    alerts: tuple[AlertRuleConfig, ...] = Field(
        default=(),
        description="Alert rules (see docs/monitoring.md); more can be added with /api/alerts.",
    )
    alert_channels: dict[str, ChannelConfig] = Field(
        default_factory=dict,
        description="Named notification channels (webhook, slack, smtp, log) that alert rules send to.",
    )
    alert_eval_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="How often the alert rules are evaluated (by one replica, elected through the database).",
    )
    drift_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Significance level of the drift checks (Holm-adjusted for the number of checks).",
    )
    drift_sample_size: int = Field(
        default=1000,
        ge=20,
        le=100_000,
        description="Traces (or dataset rows) sampled per side of a drift check; 500 of them are embedded.",
    )
    drift_permutations: int = Field(
        default=1000,
        ge=99,
        le=100_000,
        description="Permutations of the embedding drift test (its smallest p-value is 1/(1 + this)).",
    )
    models: tuple[ModelConfig, ...] = Field(
        default=(), description="Models served; empty = embedded defaults."
    )

    @field_validator("otlp_headers", mode="before")
    @classmethod
    def _otlp_headers(cls, value: Any) -> Any:
        """Also the ``key=value,key2=value2`` form of OTEL_EXPORTER_OTLP_HEADERS (values percent-encoded)."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return json.loads(value)
        headers = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, equals, header_value = item.partition("=")
            if not equals or not name.strip():
                raise ValueError(f"expected key=value, got {item!r}")
            headers[unquote(name.strip())] = unquote(header_value.strip())
        return headers

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        seen: set[str] = set()
        for model in models:
            if model.name in seen:
                raise ValueError(f"model name {model.name!r} is declared twice")
            seen.add(model.name)
        for model in models:
            for other in (*model.fallbacks, *model.context_window_fallbacks):
                if other not in seen:
                    raise ValueError(f"model {model.name!r} falls back to {other!r}, which is not declared")
        return models

    @field_validator("alerts")
    @classmethod
    def _unique_alert_names(cls, alerts: tuple[AlertRuleConfig, ...]) -> tuple[AlertRuleConfig, ...]:
        names = [rule.name for rule in alerts]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"alert name {twice[0]!r} is declared twice")
        return alerts

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'llmops.db'}"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home / "master.key"


class _MappingSource(PydanticBaseSettingsSource):
    """Settings values read from the YAML config file (lowest priority above defaults)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def find_config_file(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise SettingsError(f"config file not found: {explicit}")
        return explicit
    from_env = os.environ.get("LLMOPS_CONFIG")
    if from_env:
        return find_config_file(Path(from_env))
    for candidate in (Path.cwd() / CONFIG_FILE_NAME, _default_home() / CONFIG_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    return data


def _describe(exc: ValidationError, path: Path | None, explicit: dict[str, Any]) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "settings"
    field = str(first["loc"][0]) if first["loc"] else ""
    env_name = f"LLMOPS_{field.upper()}"
    if field in explicit:
        origin = "the arguments"
    elif field and env_name in os.environ:
        origin = f"the environment ({env_name})"
    elif path is not None:
        origin = str(path)
    else:
        origin = "the environment"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid setting {where} in {origin}: {first['msg']}{more}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Resolve the settings: arguments > LLMOPS_* environment > llmops.yaml > defaults."""
    path = find_config_file(config_file)
    file_data = _read_config(path) if path else {}
    explicit = {key: value for key, value in overrides.items() if value is not None}

    class _ResolvedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _MappingSource(settings_cls, file_data))

    try:
        resolved = _ResolvedSettings(**explicit, config=path)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, path, explicit)) from exc
    return Settings.model_construct(**dict(resolved))
