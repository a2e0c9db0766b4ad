"""One GGUF model loaded by llama.cpp, and generation on it without blocking the event loop.

The generation loop is ours (on ``Llama.generate``) rather than ``create_chat_completion``:
llama-cpp-python's streams carry no usage and cannot be stopped from outside, and we need
exact token counts in streams and a prompt stop when the client goes away.

A ``Llama`` object is not thread-safe: :class:`LlamaEngine` runs one generation at a time
(an ``asyncio.Lock``, waiters cost no thread), each in a worker thread. The lock is released
when the worker thread ends, never before, even if the awaiting task is cancelled.
llama_cpp is imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter


@dataclass(frozen=True, slots=True)
class Sampling:
    """What one generation may do: limits, sampler settings and an optional GBNF grammar."""

    max_tokens: int | None = None
    temperature: float = 0.2
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    grammar: str | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """The outcome of one generation; counts are llama.cpp's own tokens."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class StopScanner:
    """Cuts text at the first stop sequence, holding back what may be the start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._pending = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        """The part of the text so far that is safe to show; sets :attr:`stopped` on a hit."""
        pending = self._pending + piece
        hits = [index for stop in self._stops if (index := pending.find(stop)) >= 0]
        if hits:
            self._pending, self.stopped = "", True
            return pending[: min(hits)]
        keep = max((_overlap(pending, stop) for stop in self._stops), default=0)
        self._pending = pending[len(pending) - keep :]
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return pending


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``stop``."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


def json_grammar(schema: dict[str, Any] | None) -> str:
    """GBNF text that only admits JSON (matching ``schema`` when one is given)."""
    import json

    from llama_cpp import llama_grammar

    if schema is None:
        return llama_grammar.JSON_GBNF
    return str(llama_grammar.json_schema_to_gbnf(json.dumps(schema)))


class ContextOverflow(ValueError):
    """The prompt leaves no room to generate in the context window."""


class LlamaEngine:
    """A loaded GGUF model, its chat template, and a lock that serialises generation.

    For the metrics ``llmops_local_model_*``: ``tokens_generated`` counts each token as it is
    sampled, ``busy_seconds`` adds a generation's time (prompt processing included) when it ends.
    Only the generating worker thread adds to them, one generation at a time.
    """

    def __init__(self, llama: Llama, formatter: Jinja2ChatFormatter | None, file: str = "") -> None:
        self.llama = llama
        self.n_ctx = int(llama.n_ctx())
        self.file = file
        self.tokens_generated = 0
        self.busy_seconds = 0.0
        self._formatter = formatter
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, path: Path, *, threads: int, context_tokens: int) -> LlamaEngine:
        """Blocking: read the GGUF file (run it in a worker thread)."""
        from llama_cpp import Llama

        llama = Llama(
            model_path=str(path),
            n_ctx=context_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        return cls(llama, _chat_formatter(llama), path.name)

    async def aclose(self) -> None:
        """Free the model once the generation under way (if any) has ended."""
        async with self._lock:
            self.llama.close()

    @property
    def has_chat_template(self) -> bool:
        return self._formatter is not None

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """The messages rendered with the model's own chat template, as tokens."""
        if self._formatter is None:
            raise ValueError("this GGUF file has no chat template; use text completions")
        rendered = self._formatter(messages=messages)  # type: ignore[arg-type]
        tokens = self.llama.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return self._fit(tokens)

    def text_prompt(self, prompt: str | list[int]) -> list[int]:
        """A completion prompt as tokens (a token array is checked against the vocabulary)."""
        if isinstance(prompt, list):
            vocabulary = self.llama.n_vocab()
            if not all(0 <= token < vocabulary for token in prompt):
                raise ValueError(f"token ids must be between 0 and {vocabulary - 1}")
            tokens = list(prompt)
        else:
            tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        return self._fit(tokens or [self.llama.token_bos()])

    def _fit(self, tokens: list[int]) -> list[int]:
        if len(tokens) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens; this model's context window is {self.n_ctx} tokens"
            )
        return tokens

    def count(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    async def generate(self, prompt: list[int], sampling: Sampling) -> Generation:
        """A whole answer; generation stops if the awaiting task is cancelled."""
        cancel = threading.Event()
        future = await self._submit(lambda: self._run(prompt, sampling, cancel, None))
        try:
            return await asyncio.shield(future)
        finally:
            cancel.set()

    async def stream(self, prompt: list[int], sampling: Sampling) -> AsyncGenerator[str | Generation, None]:
        """Text pieces as they are generated, then the :class:`Generation`.

        Closing the iterator early tells the worker thread to stop at the next token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        cancel = threading.Event()

        def emit(piece: str | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                cancel.set()

        def work() -> Generation:
            try:
                return self._run(prompt, sampling, cancel, emit)
            finally:
                emit(None)

        future = await self._submit(work)
        try:
            while (piece := await queue.get()) is not None:
                yield piece
            yield await asyncio.shield(future)
        finally:
            cancel.set()

    async def _submit(self, job: Callable[[], Generation]) -> asyncio.Future[Generation]:
        """Start ``job`` in a worker thread once the engine is free; free it when the thread ends."""
        await self._lock.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(None, job)
        except BaseException:
            self._lock.release()
            raise
        future.add_done_callback(self._release)
        return future

    def _release(self, future: asyncio.Future[Generation]) -> None:
        self._lock.release()
        if not future.cancelled():
            future.exception()  # retrieved here too, so an abandoned failure is not reported twice

    def _run(
        self,
        prompt: list[int],
        sampling: Sampling,
        cancel: threading.Event,
        emit: Callable[[str | None], None] | None,
    ) -> Generation:
        """Blocking: sample tokens until a stop, the limit, the end of the context or ``cancel``."""
        started = time.perf_counter()
        try:
            return self._sample(prompt, sampling, cancel, emit)
        finally:
            self.busy_seconds += time.perf_counter() - started

    def _sample(
        self,
        prompt: list[int],
        sampling: Sampling,
        cancel: threading.Event,
        emit: Callable[[str | None], None] | None,
    ) -> Generation:
        import llama_cpp

        llama = self.llama
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        room = self.n_ctx - len(prompt)
        limit = min(sampling.max_tokens or room, room)
        llama.set_seed(random.getrandbits(32) if sampling.seed is None else sampling.seed & 0xFFFFFFFF)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        scanner = StopScanner(sampling.stop)
        parts: list[str] = []
        produced, finish_reason = 0, "length"
        with closing(llama.generate(prompt, **_sampler_arguments(sampling))) as tokens:
            for token in tokens:
                if cancel.is_set() or llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish_reason = "stop"
                    break
                produced += 1
                self.tokens_generated += 1
                parts.append(scanner.push(decoder.decode(llama.detokenize([token]))))
                if emit is not None and parts[-1]:
                    emit(parts[-1])
                if scanner.stopped:
                    finish_reason = "stop"
                    break
                if produced >= limit:
                    break
        if not scanner.stopped:
            parts.append(scanner.push(decoder.decode(b"", final=True)) + scanner.flush())
            if emit is not None and parts[-1]:
                emit(parts[-1])
        return Generation("".join(parts), finish_reason, len(prompt), produced)


def _sampler_arguments(sampling: Sampling) -> dict[str, Any]:
    from llama_cpp.llama_grammar import LlamaGrammar

    grammar = LlamaGrammar.from_string(sampling.grammar, verbose=False) if sampling.grammar else None
    return {
        "temp": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "repeat_penalty": sampling.repeat_penalty,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "grammar": grammar,
    }


def _chat_formatter(llama: Llama) -> Jinja2ChatFormatter | None:
    """The GGUF's own chat template, set up the way llama-cpp-python sets it up."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llama.detokenize([eos], special=True).decode("utf-8", errors="ignore") if eos >= 0 else "",
        bos_token=llama.detokenize([bos], special=True).decode("utf-8", errors="ignore") if bos >= 0 else "",
        stop_token_ids=[eos],
    )
