"""The prompt step of the request path: a request whose ``model`` is ``prompt:REFERENCE``.

It runs before the model lookup. The reference (``prompt:NAME`` = its ``production`` label, else its
latest version; ``prompt:NAME@LABEL``; ``prompt:NAME#VERSION``) is resolved from the resolver's
memory; when an experiment runs on that prompt and label (and no ``#VERSION`` was named) the
request's sticky subject picks the variant; the version is rendered with the body's
``prompt_variables``. The request sent on is then:

- ``model``: the prompt's model (the request's ``model`` field named the prompt);
- the prompt's parameters as defaults, under every parameter the request sets itself;
- chat: the rendered messages (a text prompt is one user message), then the request's own ``messages``;
- /v1/completions: the rendered text, then the request's own ``prompt`` text if any;
- ``prompt_variables`` removed.

The trace gets the prompt's name, version and label, and the experiment and variant; its
``requested_model`` stays what the client sent. Errors are :class:`GatewayError`: 404 for an
unknown prompt, label or version; 400 for a bad reference, variables that do not render (naming the
variable or the template line, ``param: prompt_variables``), a prompt without a model, or a prompt
that does not fit the endpoint.
"""

from __future__ import annotations

import random
from typing import Any

from llmops.gateway.auth import ANONYMOUS, Principal
from llmops.gateway.endpoints import Endpoint
from llmops.gateway.errors import GatewayError, bad_request
from llmops.prompts.resolver import PromptResolver, Resolution, ResolvedVersion
from llmops.prompts.services import InvalidPrompt, PromptNotFound
from llmops.prompts.templates import RenderError
from llmops.providers.base import Payload
from llmops.tracing.record import TraceRecord

PREFIX = "prompt:"
VARIABLES = "prompt_variables"


class PromptStep:
    """Turns a request naming a prompt into the request for the prompt's model."""

    def __init__(
        self, resolver: PromptResolver, *, record_variables: bool, rng: random.Random | None = None
    ) -> None:
        self.resolver = resolver
        self._record_variables = record_variables  # trace_content: the variables go in the trace too
        self._rng = rng or random.Random()  # assignment of requests that carry no subject

    async def apply(
        self,
        endpoint: Endpoint,
        payload: Payload,
        record: TraceRecord,
        user_header: bytes | None = None,
        principal: Principal = ANONYMOUS,
    ) -> Payload:
        """The payload to send on in place of ``payload``; fills the trace's prompt fields.

        A prompt of a team serves that team's keys (and admins); a prompt of no team (pushed from
        the CLI or by an admin) serves every key.
        """
        if endpoint.kind == "embedding":
            raise bad_request("embeddings cannot use a prompt; name a model", "model")
        reference = payload["model"][len(PREFIX) :]
        resolution = self._resolver_cached(reference) or await self._resolve(reference)
        if not (resolution.team_id is None or principal.is_admin or resolution.team_id == principal.team_id):
            raise GatewayError(
                404, f"prompt {resolution.name!r} not found", param="model", code="prompt_not_found"
            )
        version = self._choose(resolution, payload, record, user_header)
        variables = payload.get(VARIABLES)
        if variables is not None and not isinstance(variables, dict):
            raise bad_request(
                f"{VARIABLES} must be an object of variable names to values, got {type(variables).__name__}",
                VARIABLES,
            )
        if variables and self._record_variables:
            record.attributes[VARIABLES] = variables
        if version.model is None:
            raise bad_request(
                f"prompt {version.name!r} version {version.number} has no model; set `model` in the prompt",
                "model",
            )
        try:
            rendered = version.render(variables)
        except RenderError as exc:
            raise GatewayError(
                400, f"prompt {version.name!r}: {exc}", param=VARIABLES, code="prompt_render_error"
            ) from None
        upstream = {**version.parameters, **payload, "model": version.model}
        upstream.pop(VARIABLES, None)
        if endpoint.kind == "chat":
            upstream["messages"] = rendered.as_messages() + _request_messages(payload)
        elif rendered.text is None:
            raise bad_request(
                f"prompt {version.name!r} is a chat prompt: use /v1/chat/completions, or a text prompt",
                "model",
            )
        else:
            upstream["prompt"] = rendered.text + _request_text(payload)
        return upstream

    def _resolver_cached(self, reference: str) -> Resolution | None:
        try:
            return self.resolver.cached(reference)
        except (PromptNotFound, InvalidPrompt) as exc:
            raise _as_gateway_error(exc) from None

    async def _resolve(self, reference: str) -> Resolution:
        try:
            return await self.resolver.resolve(reference)
        except (PromptNotFound, InvalidPrompt) as exc:
            raise _as_gateway_error(exc) from None

    def _choose(
        self, resolution: Resolution, payload: Payload, record: TraceRecord, user_header: bytes | None
    ) -> ResolvedVersion:
        """The version this request gets (the experiment's variant for its subject, if one runs)."""
        record.prompt_name = resolution.name
        record.prompt_label = resolution.label
        experiment = resolution.experiment
        if experiment is None:
            version = resolution.version
            assert version is not None  # only an experiment serves a label that points nowhere
        else:
            subject = _subject(experiment.sticky_by, payload, user_header)
            variant, version = experiment.pick(subject, self._rng)
            record.experiment = experiment.id
            record.variant = variant.name
        record.prompt_version = version.number
        return version


def _subject(sticky_by: str, payload: Payload, user_header: bytes | None) -> str | None:
    if sticky_by == "header":
        return user_header.decode("utf-8", "replace") if user_header else None
    user = payload.get("user")
    return user if isinstance(user, str) and user else None


def _request_messages(payload: Payload) -> list[Any]:
    messages = payload.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise bad_request("messages must be a list (appended after the prompt's messages)", "messages")
    return messages


def _request_text(payload: Payload) -> str:
    text = payload.get("prompt")
    if text is None:
        return ""
    if not isinstance(text, str):
        raise bad_request(
            "with a prompt, `prompt` must be a string (added after the rendered text)", "prompt"
        )
    return text


def _as_gateway_error(exc: PromptNotFound | InvalidPrompt) -> GatewayError:
    if isinstance(exc, PromptNotFound):
        return GatewayError(404, str(exc), param="model", code="prompt_not_found")
    return GatewayError(400, str(exc), param="model", code="invalid_prompt_reference")
