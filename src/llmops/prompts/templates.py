"""Rendering prompt templates: Jinja2 in a sandbox, with declared variables and bounded work.

The sandbox refuses access to Python internals (attributes starting with ``_``, unsafe callables);
loops and conditionals work as usual. Two budgets bound what one render may cost: the output size
(characters) and the number of loop iterations over ``range``. Errors are :class:`RenderError` with
one readable line naming the variable, or the template line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec

MAX_OUTPUT_CHARS = 200_000
MAX_LOOP_STEPS = 100_000
_BUDGET = "__llmops_budget"


class RenderError(ValueError):
    """A template or its variables cannot be rendered; the message is one line.

    ``variable`` names the variable at fault when there is one (missing, undeclared, wrong type).
    """

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(slots=True)
class _Budget:
    steps_left: int


@pass_context
def _bounded_range(context: Context, *args: int) -> Iterator[int]:
    budget: _Budget = context[_BUDGET]
    for value in range(*args):
        budget.steps_left -= 1
        if budget.steps_left < 0:
            raise RenderError(f"the template loops more than {MAX_LOOP_STEPS} times")
        yield value


def _finalize(value: Any) -> Any:
    return "" if value is None else value


class _PromptSandbox(SandboxedEnvironment):
    """The sandbox, plus size checks on ``*`` and ``**`` (``'a' * 10**12`` must not reach memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if (
                isinstance(right, int | float)
                and right > 64
                and isinstance(left, int | float)
                and abs(left) > 1
            ):
                raise RenderError("the template computes a power too large")
            return left**right
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                if len(sequence) * count > MAX_OUTPUT_CHARS:
                    raise RenderError(f"the template builds a value over {MAX_OUTPUT_CHARS} characters")
        return left * right


def _environment() -> SandboxedEnvironment:
    environment = _PromptSandbox(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize
    )
    environment.globals["range"] = _bounded_range
    return environment


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """One sandbox per process (immutable once built: templates compile against it)."""
    return _environment()


def _where(exc: TemplateSyntaxError, what: str) -> str:
    return f"{what} line {exc.lineno}: {exc.message}"


def check_template(source: str, declared: dict[str, VariableSpec], what: str = "template") -> None:
    """Compile-time checks: syntax, and no variable used that is not declared."""
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise RenderError(_where(exc, what)) from None
    used = meta.find_undeclared_variables(tree) - set(env.globals)
    unknown = sorted(used - set(declared))
    if unknown:
        raise RenderError(f"{what} uses undeclared variable {unknown[0]!r}; declare it under variables")
    _no_private_names(tree, what)


def template_variables(source: str, what: str = "template") -> list[str]:
    """The variables a template uses, sorted (a :class:`RenderError` when it does not parse)."""
    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise RenderError(_where(exc, what)) from None
    return sorted(meta.find_undeclared_variables(tree) - set(env.globals))


def _no_private_names(tree: nodes.Template, what: str) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Name)):
        name = str(node.attr if isinstance(node, nodes.Getattr) else getattr(node, "name", ""))
        if name.startswith("_"):
            raise RenderError(f"{what} line {node.lineno}: names starting with '_' are not allowed")


def check_content(content: PromptContent) -> None:
    if content.template is not None:
        check_template(content.template, content.variables)
    for index, message in enumerate(content.messages or ()):
        check_template(message.content, content.variables, f"messages[{index}]")


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "list": (list, tuple),
    "object": (dict,),
}


def bind_variables(declared: dict[str, VariableSpec], given: dict[str, Any] | None) -> dict[str, Any]:
    """The values a render uses: given ones checked against their declaration, defaults for the rest."""
    given = given or {}
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RenderError(
                f"variable {name!r} is not declared by this prompt (declared: {known})", variable=name
            )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given and given[name] is not None:
            value = given[name]
            expected = _TYPES.get(spec.type)
            wrong_bool = spec.type in ("number", "integer") and isinstance(value, bool)
            if expected is not None and (not isinstance(value, expected) or wrong_bool):
                raise RenderError(
                    f"variable {name!r} must be of type {spec.type}, got {type(value).__name__}",
                    variable=name,
                )
            values[name] = value
        elif spec.required:
            raise RenderError(f"missing required variable {name!r}", variable=name)
        else:
            values[name] = spec.default
    return values


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return environment().from_string(source)


@lru_cache(maxsize=1)
def _globals() -> dict[str, Any]:
    return dict(environment().globals)


def render_template(source: str, values: dict[str, Any], what: str = "template") -> str:
    if "{" not in source and "\r" not in source:  # no tag and no newline to normalise: the text itself
        if len(source) > MAX_OUTPUT_CHARS:
            raise RenderError(f"{what} renders to more than {MAX_OUTPUT_CHARS} characters")
        return source
    budget = _Budget(MAX_LOOP_STEPS)
    try:
        template = _compiled(source)
        parts: list[str] = []
        size = 0
        # Jinja's low-level API with one flat dict: generate() copies the values twice and walks the
        # globals' ChainMap on every call, 2-3x the cost of rendering a short template (the gateway's path)
        context = template.new_context({**_globals(), **values, _BUDGET: budget}, shared=True)
        for part in template.root_render_func(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise RenderError(f"{what} renders to more than {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
    except RenderError:
        raise
    except TemplateSyntaxError as exc:
        raise RenderError(_where(exc, what)) from None
    except UndefinedError as exc:
        raise RenderError(f"{what}: {exc.message}") from None
    except SecurityError as exc:
        raise RenderError(f"{what}: not allowed in a prompt template: {exc}") from None
    except TemplateError as exc:
        raise RenderError(f"{what}: {exc.message or type(exc).__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(f"{what}: {type(exc).__name__}: {exc}") from None
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered prompt: chat messages, or the text of a text prompt."""

    messages: list[dict[str, str]] | None
    text: str | None

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return self.messages
        return [{"role": "user", "content": self.text or ""}]


def render(content: PromptContent, variables: dict[str, Any] | None) -> Rendered:
    values = bind_variables(content.variables, variables)
    if content.template is not None:
        return Rendered(None, render_template(content.template, values))
    messages = [
        _render_message(index, message, values) for index, message in enumerate(content.messages or ())
    ]
    return Rendered(messages, None)


def _render_message(index: int, message: MessageTemplate, values: dict[str, Any]) -> dict[str, str]:
    return {"role": message.role, "content": render_template(message.content, values, f"messages[{index}]")}
