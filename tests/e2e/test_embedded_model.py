"""The quickstart: `llmops serve` with no config answers with the embedded model, offline."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from conftest import start_server

pytestmark = pytest.mark.model


def test_zero_config_server_answers_with_the_embedded_model(tmp_path: Path) -> None:
    server = start_server(tmp_path, models=None, ready_timeout=120)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60)
        assert {model.id for model in client.models.list()} == {"smollm2", "all-minilm-l6-v2"}
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        answer = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=24)  # type: ignore[arg-type]
        assert answer.choices[0].message.content
        assert answer.usage is not None
        assert answer.usage.completion_tokens > 0
        stream = client.chat.completions.create(
            model="smollm2", messages=messages, max_tokens=16, stream=True
        )  # type: ignore[arg-type]
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        vectors = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a kitten"])
        assert len(vectors.data[0].embedding) == 384
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["models_not_ready"] == []
    finally:
        server.stop()
