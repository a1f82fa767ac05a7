"""Ticket templates: summary, description and extra fields rendered from events.

Templates are Jinja2, rendered in an immutable sandbox with strict undefined
handling: a misspelt name is an error, never an empty string. A template
either renders completely or raises `TemplateError`; there is no partial
output to send.

Bounds on one rendering (a template is operator input, and a loop can be
written by mistake):

- Time: a trace function on the template's own code checks a deadline at
  every template line, so a loop written in the template stops after
  `RENDER_SECONDS`. A single call into C code (a filter on a huge value) is
  not interrupted; the size guards below keep such calls small.
- Size: output stops being collected at `OUTPUT_CAP` characters (the rest is
  never rendered) and is then cut to the destination's field limit. Values
  built inside a template (`~`, `+`, `*`, `%`, `replace`, filter and method
  arguments) are refused past `VALUE_CAP` characters or items, and integer
  arguments past `MAX_ARGUMENT`, before the work is done. The sandbox is the
  immutable one and `namespace` is removed, so no value can grow across loop
  iterations.

Known shortcoming: the deadline is checked between template lines, so the
bound is "RENDER_SECONDS plus the longest single guarded operation", which
the guards keep to milliseconds but do not prove. Rendering in a separate
process would give a hard bound at the cost of a process per destination.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ticketbridge.events import Event, EventKind
from ticketbridge.text import ELLIPSIS, clean, has_wide_format

RENDER_SECONDS = 1.0
OUTPUT_CAP = 262_144
VALUE_CAP = 1_000_000
MAX_ARGUMENT = 100_000
MAX_SOURCE = 16_384
TEMPLATE_FILENAME = "<ticket-template>"

DEFAULT_SUMMARY = (
    "[{{ severity | upper }}] {{ host }}{% if check %}/{{ check }}{% endif %}"
    "{% if summary %}: {{ summary | oneline }}{% endif %}"
)
DEFAULT_DESCRIPTION = (
    "Host: {{ host }}\n"
    "{% if check %}Check: {{ check }}\n{% endif %}"
    "Severity: {{ severity }}\n"
    "Kind: {{ kind }}\n"
    "Time: {{ occurred_at | utc }}\n"
    "Source: {{ source }} (event {{ event_id }})"
    "{% if details | trim %}\n\n{{ details | trim }}{% endif %}"
)

VARIABLES = {
    "kind": "problem, recovery, acknowledgement or update",
    "host": "host name",
    "check": "check (service) name; empty for a host check",
    "state": "the monitoring state as the source sent it, e.g. CRITICAL",
    "severity": "same as state (the event's severity field)",
    "output": "one-line plugin output (the event's summary)",
    "summary": "same as output",
    "details": "long output, may span lines",
    "occurred_at": "when it happened: a UTC datetime (`| utc` formats it)",
    "source": "the configured source name",
    "event_id": "the source's id of this event",
    "problem_id": "the source's problem id, if it sends one",
    "incident_key": "what ties the problem to its recovery",
    "marker": "the correlation marker of the ticket",
    "destination": "the destination's name",
    "extra": "every field of the source record: extra.env, extra['my-field']",
}


# Fields a destination client fills itself; a template may not replace them.
RESERVED_FIELDS = {
    "jira": ("project", "issuetype", "summary", "description", "labels"),
    "servicenow": (
        "short_description",
        "description",
        "correlation_id",
        "correlation_display",
    ),
    "webhook": (),
    "zendesk": ("subject", "description", "comment", "external_id", "type", "tags"),
    "redmine": ("project_id", "tracker_id", "subject", "description", "custom_fields"),
    "request_tracker": ("Queue", "Subject", "Content", "ContentType", "CustomFields"),
}


class TemplateError(Exception):
    """A template that failed to compile or render, named with its line.

    `where` is the template's config path, e.g.
    `destinations.jira_new.templates.summary`.
    """

    def __init__(self, where: str, line: int | None, message: str) -> None:
        self.where = where
        self.line = line
        self.message = message
        at = f"line {line}: " if line else ""
        super().__init__(f"{where}: {at}{message}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A destination's ticket text for one event, cleaned but not yet cut."""

    summary: str
    description: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def comment(self) -> str:
        return f"{self.summary}\n\n{self.description}"


class TicketTemplates:
    """The compiled templates of one destination.

    `where` is the config path of the templates block, used in every error.
    """

    def __init__(
        self,
        where: str,
        summary: str | None = None,
        description: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        self.where = where
        self._summary = _compile(f"{where}.summary", summary or DEFAULT_SUMMARY)
        self._description = _compile(
            f"{where}.description", description or DEFAULT_DESCRIPTION
        )
        self._fields = {
            name: _compile(f"{where}.fields.{name}", source)
            for name, source in (fields or {}).items()
        }

    def render(
        self, event: Event, *, marker: str = "", destination: str = ""
    ) -> Rendered:
        """Render every template for `event`; raise TemplateError on any failure."""
        context = template_context(event, marker=marker, destination=destination)
        # A summary is one line: ticket systems refuse or mangle line breaks.
        summary = " ".join(self._summary.render(context).split())
        if not summary:
            raise TemplateError(self._summary.where, None, "rendered empty")
        return Rendered(
            summary=summary,
            description=self._description.render(context),
            fields={name: t.render(context) for name, t in self._fields.items()},
        )

    def check(self) -> list[str]:
        """Render against one sample event of each kind; the problems found."""
        problems: list[str] = []
        for event in sample_events():
            try:
                self.render(event, marker="tb-0123456789abcdef0123", destination="x")
            except TemplateError as exc:
                if str(exc) not in problems:
                    problems.append(str(exc))
        return problems


def templates_for(where: str, settings: Any) -> TicketTemplates:
    """Compile a destination's `templates` settings (summary, description, fields)."""
    return TicketTemplates(
        where, settings.summary, settings.description, settings.fields
    )


def reserved_field_problems(where: str, kind: str, settings: Any) -> list[str]:
    """Extra fields that would overwrite a field the client fills itself."""
    reserved = RESERVED_FIELDS.get(kind, ())
    return [
        f"{where}.fields.{name}: filled by ticketbridge itself; summary and "
        "description have templates of their own"
        for name in settings.fields
        if name in reserved
    ]


def template_context(
    event: Event, *, marker: str = "", destination: str = ""
) -> dict[str, Any]:
    """The variables a template sees (documented in VARIABLES)."""
    return {
        "kind": event.kind.value,
        "host": event.host,
        "check": event.check,
        "state": event.severity,
        "severity": event.severity,
        "output": event.summary,
        "summary": event.summary,
        "details": event.details,
        "occurred_at": event.occurred_at.astimezone(UTC),
        "source": event.source,
        "event_id": event.source_event_id,
        "problem_id": event.problem_id,
        "incident_key": event.incident_key,
        "marker": marker,
        "destination": destination,
        "extra": event.raw if isinstance(event.raw, _SampleExtra) else dict(event.raw),
    }


class _SampleExtra(dict[str, Any]):
    """Extra fields of a sample event: every name has a placeholder value.

    Which extra fields a source sends is not known at load time, so a check
    accepts any `extra.<name>`; an event without it fails at run time.
    """

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def sample_events() -> list[Event]:
    """One made-up event of each kind, for checking templates at load."""
    base = Event(
        source="sample",
        source_event_id="sample-1",
        kind=EventKind.PROBLEM,
        severity="CRITICAL",
        host="host.example",
        check="HTTP",
        summary="HTTP CRITICAL - 503 Service Unavailable",
        details="line one of the long output\nline two",
        occurred_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        raw=_SampleExtra(),
        problem_id="42",
        incident_key="sample|host.example|HTTP",
    )
    states = {
        EventKind.PROBLEM: "CRITICAL",
        EventKind.RECOVERY: "OK",
        EventKind.ACKNOWLEDGEMENT: "CRITICAL",
        EventKind.UPDATE: "WARNING",
    }
    return [replace(base, kind=kind, severity=state) for kind, state in states.items()]


# --- The sandbox --------------------------------------------------------------


class _Template:
    """One compiled template and where it is configured."""

    def __init__(self, where: str, template: jinja2.Template) -> None:
        self.where = where
        self._template = template

    def render(self, context: dict[str, Any]) -> str:
        deadline = time.monotonic() + RENDER_SECONDS
        try:
            with _deadline(deadline):
                text = _collect(self._template.generate(context))
        except TemplateError:
            raise
        except _Timeout:
            raise TemplateError(
                self.where,
                None,
                f"rendering took longer than {RENDER_SECONDS:g} s (a runaway loop?)",
            ) from None
        except Exception as exc:
            raise TemplateError(
                self.where, _template_line(exc.__traceback__), _describe(exc)
            ) from exc
        return clean(text)


def _compile(where: str, source: str) -> _Template:
    if len(source) > MAX_SOURCE:
        raise TemplateError(where, None, f"longer than {MAX_SOURCE} characters")
    try:
        template = _from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(where, exc.lineno, exc.message or "syntax error") from None
    return _Template(where, template)


def _collect(chunks: Iterator[str]) -> str:
    """Join rendered chunks, stopping (and not rendering on) past OUTPUT_CAP."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > OUTPUT_CAP:
                return "".join(parts)[: OUTPUT_CAP - 1] + ELLIPSIS
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return "".join(parts)


class _Timeout(BaseException):
    """Raised inside template code at the deadline.

    A BaseException so a template's own error handling (none in Jinja, but
    filters may catch Exception) cannot swallow it.
    """


class _deadline:  # noqa: N801 (used as a context manager, like a function)
    """Trace the template's own frames in this thread; stop them at `deadline`."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._previous: Any = None

    def __enter__(self) -> None:
        self._previous = sys.gettrace()
        sys.settrace(self._global)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == TEMPLATE_FILENAME:
            self._check()
            return self._local
        return None

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self._check()
        return self._local

    def _check(self) -> None:
        if time.monotonic() > self._deadline:
            raise _Timeout


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame of a traceback."""
    line = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in (TEMPLATE_FILENAME, "<template>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.UndefinedError | SecurityError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _too_big(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > MAX_ARGUMENT
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return len(value) > VALUE_CAP
    return False


def _refuse_big(what: str, values: Any) -> None:
    for value in values:
        if _too_big(value):
            raise SecurityError(f"{what}: argument too large")
        if isinstance(value, str) and has_wide_format(value):
            raise SecurityError(f"{what}: format width too large")


def _guarded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses oversized arguments before doing any work."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        # Filters that take the context or environment get it first.
        passed = (jinja2.runtime.Context, jinja2.nodes.EvalContext)
        values = [a for a in args if not isinstance(a, passed)]
        _refuse_big(f"filter {name}", [*values, *kwargs.values()])
        if name == "replace" and len(values) >= 3:
            _check_replace(*values[:3])
        return function(*args, **kwargs)

    for attr in ("jinja_pass_arg",):
        if hasattr(function, attr):
            setattr(guarded, attr, getattr(function, attr))
    return guarded


def _check_replace(text: Any, old: Any, new: Any) -> None:
    text, old, new = str(text), str(old), str(new)
    count = text.count(old) if old else len(text) + 1
    if len(text) + count * max(0, len(new) - len(old)) > VALUE_CAP:
        raise SecurityError("replace: result too large")


def _binop_problem(operator: str, left: Any, right: Any) -> str | None:
    """Why an operator's result would be too big to compute, if it would."""
    sequences = str | list | tuple
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            repeats = isinstance(seq, sequences) and isinstance(n, int)
            if repeats and len(seq) * max(n, 0) > VALUE_CAP:
                return "result too large"
    elif operator == "**":
        if isinstance(right, int) and abs(right) > 1000:
            return "exponent too large"
    elif operator == "+":
        both = isinstance(left, sequences) and isinstance(right, sequences)
        if both and len(left) + len(right) > VALUE_CAP:
            return "result too large"
    elif operator == "%" and isinstance(left, str) and has_wide_format(left):
        return "format width too large"
    return None


class _GuardedCodeGenerator(CodeGenerator):
    """Routes `~` through the environment so its result size can be checked."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.guarded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _TicketEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with size guards on operators, calls and filters."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        problem = _binop_problem(operator, left, right)
        if problem:
            raise SecurityError(f"{operator}: {problem}")
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # noqa: N805 (the sandbox's own signature)
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        name = getattr(__obj, "__name__", "call")
        # str.format comes wrapped by the sandbox: its string is one level in.
        wrapped = getattr(__obj, "__wrapped__", None)
        owner = getattr(__obj, "__self__", getattr(wrapped, "__self__", None))
        _refuse_big(name, [*args, *kwargs.values(), owner])
        if name == "replace" and isinstance(owner, str) and len(args) >= 2:
            _check_replace(owner, args[0], args[1])
        return super().call(__context, __obj, *args, **kwargs)

    def guarded_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        if sum(len(t) for t in texts) > VALUE_CAP:
            raise SecurityError("~: result too large")
        return "".join(texts)


def _oneline(value: Any) -> str:
    """Collapse all whitespace, newlines included, to single spaces."""
    return " ".join(str(value).split())


def _utc(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    """Format a datetime in UTC (`occurred_at | utc`, or with a strftime format)."""
    if has_wide_format(fmt):
        raise SecurityError("utc: format width too large")
    if not isinstance(value, datetime):
        raise TypeError(f"utc: expected a datetime, got {type(value).__name__}")
    return value.astimezone(UTC).strftime(fmt)


def _environment() -> _TicketEnvironment:
    env = _TicketEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    # A namespace is the one mutable object a sandboxed template can carry
    # across loop iterations, i.e. the one way to grow a value in a loop.
    env.globals.pop("namespace", None)
    env.filters["oneline"] = _oneline
    env.filters["utc"] = _utc
    env.filters = {name: _guarded(name, f) for name, f in env.filters.items()}
    return env


_ENVIRONMENT = _environment()


def _from_string(source: str) -> jinja2.Template:
    code = _ENVIRONMENT.compile(source, filename=TEMPLATE_FILENAME)
    return _ENVIRONMENT.template_class.from_code(
        _ENVIRONMENT, code, _ENVIRONMENT.make_globals(None), None
    )
