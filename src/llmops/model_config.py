"""What `models:` in llmops.yaml declares: public model names, their deployments and how to route them.

A public model name (what clients send as ``model``) maps to one or more *deployments*: an
upstream that can answer it (provider, base URL, upstream model id, key, prices, capacity,
timeouts). The one-deployment form of earlier releases stays valid: a model entry that names a
``provider`` at the top level is its own single deployment::

    models:
      - {name: gpt-4o-mini, provider: openai, base_url: https://api.openai.com/v1}
      - name: chat
        routing: least-in-flight
        deployments:
          - {provider: openai, base_url: http://a:8000/v1, model: llama3, weight: 2}
          - {provider: openai, base_url: http://b:8000/v1, model: llama3}
        fallbacks: [gpt-4o-mini]

Everything here is immutable and validated once, when the settings are loaded (or reloaded).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

RoutingStrategy = Literal["weighted-random", "least-in-flight", "lowest-latency", "lowest-cost", "priority"]
ROUTING_STRATEGIES: tuple[str, ...] = (
    "weighted-random",
    "least-in-flight",
    "lowest-latency",
    "lowest-cost",
    "priority",
)
CacheMode = Literal["off", "exact", "semantic"]

# fields of a deployment that a one-deployment model entry may carry at its top level
_DEPLOYMENT_FIELDS = (
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "api_key_credential",
    "weight",
    "priority",
    "context_window",
    "rpm",
    "tpm",
    "input_price_per_1m",
    "output_price_per_1m",
    "params",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Frozen):
    """Upstream time limits in seconds; unset values fall back to the next level (see ModelConfig)."""

    connect: float | None = Field(default=None, gt=0, description="Time to open a connection.")
    first_token: float | None = Field(
        default=None, gt=0, description="Time to the first streamed chunk (streams only)."
    )
    total: float | None = Field(default=None, gt=0, description="Time for the whole answer.")

    def over(self, base: Timeouts) -> Timeouts:
        """These values where set, else ``base``'s."""
        return Timeouts(
            connect=self.connect if self.connect is not None else base.connect,
            first_token=self.first_token if self.first_token is not None else base.first_token,
            total=self.total if self.total is not None else base.total,
        )


class RetryPolicy(_Frozen):
    """How often and how long a request is tried before the model's fallbacks take over."""

    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Upstream calls per model, across its deployments."
    )
    deadline_seconds: float | None = Field(
        default=None, gt=0, description="Give up retrying once this much time has passed since the request."
    )
    backoff_base_seconds: float = Field(default=0.1, ge=0, description="First back-off ceiling.")
    backoff_max_seconds: float = Field(default=5.0, ge=0, description="Largest back-off ceiling.")
    retry_after_cap_seconds: float = Field(
        default=10.0, ge=0, description="Longest `Retry-After` from an upstream that is honoured."
    )


class CircuitBreakerConfig(_Frozen):
    """When a deployment stops getting traffic, and for how long."""

    consecutive_failures: int = Field(default=5, ge=1, description="Open after this many failures in a row.")
    error_rate: float = Field(
        default=0.5, gt=0, le=1, description="Or open when this share of recent calls failed..."
    )
    window_seconds: float = Field(default=30.0, gt=0, description="...over this window...")
    min_calls: int = Field(default=20, ge=1, description="...once the window holds at least this many calls.")
    cooldown_seconds: float = Field(
        default=30.0, gt=0, description="Time open before one probe call is let through (half-open)."
    )


class CacheConfig(_Frozen):
    """Response caching for one model (off unless a model turns it on)."""

    mode: CacheMode = Field(default="off", description="off, exact, or semantic (exact is tried first).")
    ttl_seconds: float = Field(default=3600.0, gt=0, description="How long an answer may be served again.")
    similarity: float = Field(
        default=0.95, gt=0, le=1, description="Semantic mode: least cosine similarity for a hit."
    )
    only_deterministic: bool = Field(
        default=True, description="Cache only requests with temperature 0 or a seed."
    )


class DeploymentConfig(_Frozen):
    """One upstream that answers for a public model name."""

    id: str = Field(default="", max_length=200, description="Name of this deployment (default: derived).")
    name: str = Field(default="", description="The public model name (filled in from the model entry).")
    provider: str = Field(min_length=1, description="Registered provider name: openai, local, echo, ...")
    model: str | None = Field(default=None, description="Upstream model id; defaults to the public name.")
    base_url: str | None = Field(default=None, description="Upstream base URL, e.g. http://host:8000/v1.")
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable that holds the upstream API key."
    )
    api_key_credential: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name of a stored credential (`llmops credentials set`) that holds the upstream API key.",
    )
    weight: float = Field(default=1.0, gt=0, description="Share of traffic under weighted-random routing.")
    priority: int = Field(default=0, description="Order under priority routing (lower is tried first).")
    context_window: int | None = Field(
        default=None, ge=1, description="Largest prompt + answer in tokens; longer prompts skip it."
    )
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute it can take.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute it can take.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Its own upstream time limits.")
    input_price_per_1m: float = Field(default=0.0, ge=0, description="USD per 1M prompt tokens.")
    output_price_per_1m: float = Field(default=0.0, ge=0, description="USD per 1M completion tokens.")
    params: dict[str, Any] = Field(default_factory=dict, description="Provider-specific options.")

    @property
    def upstream_model(self) -> str:
        return self.model or self.name

    # the decrypted stored credential, given by the catalog when it builds the provider (private:
    # never dumped, printed or compared as a field)
    _credential_secret: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_key_source(self) -> DeploymentConfig:
        if self.api_key_env and self.api_key_credential:
            raise ValueError("give either api_key_env or api_key_credential, not both")
        return self

    def api_key(self) -> str | None:
        """The upstream key: the stored credential resolved at build time, else the environment's."""
        if self.api_key_credential:
            return self._credential_secret
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def with_credential(self, secret: str) -> DeploymentConfig:
        """A copy whose :meth:`api_key` is ``secret`` (the decrypted ``api_key_credential``)."""
        copy = self.model_copy()
        copy._credential_secret = secret
        return copy

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_price_per_1m + completion_tokens * self.output_price_per_1m) / 1e6

    def unit_price(self) -> float:
        """A price to rank deployments by under lowest-cost routing (prompt and answer weighed alike)."""
        return self.input_price_per_1m + self.output_price_per_1m


class ModelConfig(_Frozen):
    """One public model name: its deployments, how requests are routed among them, and what follows."""

    name: str = Field(min_length=1, max_length=200, description="Public model name clients ask for.")
    deployments: tuple[DeploymentConfig, ...] = Field(
        min_length=1, description="Upstreams that answer for this name."
    )
    routing: RoutingStrategy = Field(default="weighted-random", description="How a deployment is picked.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retries across deployments.")
    fallbacks: tuple[str, ...] = Field(
        default=(), description="Other model names tried, in order, when every deployment failed."
    )
    context_window_fallbacks: tuple[str, ...] = Field(
        default=(), description="Larger models tried when the prompt is too long for this one."
    )
    timeouts: Timeouts = Field(
        default_factory=Timeouts, description="Limits that override those of every deployment."
    )
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @model_validator(mode="before")
    @classmethod
    def _one_deployment_form(cls, data: Any) -> Any:
        """``{name, provider, ...}`` (the original form) is a model with that one deployment."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        flat = {key: data.pop(key) for key in _DEPLOYMENT_FIELDS if key in data}
        if "deployments" in data:
            if flat:
                raise ValueError(
                    f"give either deployments or {', '.join(sorted(flat))} at the top level, not both"
                )
        elif flat:
            if "provider" not in flat:
                raise ValueError("a model needs a provider, or a list of deployments")
            data["deployments"] = [flat]
        name = data.get("name")
        deployments = data.get("deployments")
        if isinstance(name, str) and isinstance(deployments, list | tuple):
            data["deployments"] = [
                _named(item, name, index, len(deployments)) for index, item in enumerate(deployments)
            ]
        return data

    @model_validator(mode="after")
    def _unique_deployment_ids(self) -> ModelConfig:
        ids = [deployment.id for deployment in self.deployments]
        duplicates = sorted({item for item in ids if ids.count(item) > 1})
        if duplicates:
            raise ValueError(f"deployment id {duplicates[0]!r} is used twice")
        if self.name in self.fallbacks or self.name in self.context_window_fallbacks:
            raise ValueError("a model cannot be its own fallback")
        return self

    # the one-deployment view, for code and output that show one provider per model
    @property
    def provider(self) -> str:
        return self.deployments[0].provider

    @property
    def upstream_model(self) -> str:
        return self.deployments[0].upstream_model

    @property
    def base_url(self) -> str | None:
        return self.deployments[0].base_url


def _named(item: Any, model_name: str, index: int, count: int) -> Any:
    """Give a deployment the public name, and an id when it has none."""
    if isinstance(item, DeploymentConfig):
        item = item.model_dump()
    if not isinstance(item, dict):
        return item
    item = dict(item)
    if item.get("name") not in (None, "", model_name):
        raise ValueError("a deployment has no name of its own; give it an id instead")
    item["name"] = model_name
    params = item.get("params")
    if isinstance(params, dict) and "timeout_seconds" in params:  # the earlier spelling of timeouts.total
        params = dict(params)
        total = params.pop("timeout_seconds")
        timeouts = item.get("timeouts")
        timeouts = dict(timeouts) if isinstance(timeouts, dict) else {}
        timeouts.setdefault("total", total)
        item["params"], item["timeouts"] = params, timeouts
    if not item.get("id"):
        item["id"] = model_name if count == 1 else f"{model_name}#{index + 1}"
    return item
