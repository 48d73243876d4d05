"""The app-specific half of a plan: its login, journeys of HTTP steps and integrity checks.

Parsed with plan.py (same rules: unknown keys refused, every error by key
path); every expression and template is compiled when the plan is read, so
a typo is a plan error, not a failure mid-run. Expressions and templates:
template.py. Model operations and uncertain values: model.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from strangler.rehearse.template import ExpressionError, check_template, compiled

Int = Annotated[int, Strict()]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
OPS = ("set", "add", "remove", "merge")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _expression(value: str) -> str:
    try:
        compiled(value)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
    return value


def _template(value: Any) -> Any:
    try:
        check_template(value)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
    return value


def _statuses(raw: Any) -> Any:
    """``expect: 200`` is ``[200]``; ``any`` accepts every answer."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return (raw,)
    return raw


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r}: a check name is lower-case letters, digits and _")
    return value


def _one_form(model: str | None, equals: Any, equals_given: bool) -> None:
    """``model`` or ``equals`` (which may be null, e.g. ``equals: null``), not both."""
    if model is not None and equals is not None:
        raise ValueError("give model (a model path) or equals (a template), not both")
    if model is None and not equals_given:
        raise ValueError("give model (a model path) or equals (a template)")


class Update(_Frozen):
    """One model operation: ``{add: cart.{vars.pid}, value: "{vars.qty}"}``.

    ``value`` is a template; ``from`` an expression (it may read ``response``)."""

    op: Literal["set", "add", "remove", "merge"]
    path: str = Field(min_length=1)
    """Dotted path in the model, a template (``cart.{vars.pid}``)."""
    value: Any = None
    from_: str | None = Field(None, alias="from")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "op" in raw:
            return raw
        named = [op for op in OPS if op in raw]
        if len(named) != 1:
            raise ValueError(f"name exactly one of {', '.join(OPS)} (the model path)")
        rest = {k: v for k, v in raw.items() if k != named[0]}
        return {"op": named[0], "path": raw[named[0]], **rest}

    @model_validator(mode="after")
    def _value(self) -> Update:
        _template(self.path)
        if self.value is not None and self.from_ is not None:
            raise ValueError("give value or from, not both")
        if self.op != "remove" and "value" not in self.model_fields_set and self.from_ is None:
            raise ValueError(f"{self.op} needs a value (a template) or from (an expression)")
        _template(self.value)
        if self.from_ is not None:
            _expression(self.from_)
        return self

    @property
    def has_value(self) -> bool:
        """remove: with a value, its elements go from a list; without, the key goes."""
        return self.value is not None or self.from_ is not None


class Assertion(_Frozen):
    """What an answer must show: ``expr`` (on the answer's body) equal to ``equals`` (a
    template) or to the model at ``model`` (a path: the model adopts the answer, see
    model.py; ``compare: contains``: the model's elements are in the answer); or a status."""

    expr: str | None = None
    equals: Any = None
    model: str | None = None
    compare: Literal["equal", "contains"] = "equal"
    status: tuple[Int, ...] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _one_status(cls, raw: Any) -> Any:
        return _statuses(raw)

    @model_validator(mode="after")
    def _form(self) -> Assertion:
        if self.status is not None:
            if self.expr is not None or self.model is not None or self.equals is not None:
                raise ValueError("a status assertion has nothing else")
            return self
        if self.expr is None:
            raise ValueError("needs expr (with equals or model), or status")
        _expression(self.expr)
        _one_form(self.model, self.equals, "equals" in self.model_fields_set)
        if self.model is not None:
            _template(self.model)
        else:
            _template(self.equals)
        if self.compare == "contains" and self.model is None:
            raise ValueError("compare: contains needs model")
        return self


class Request(_Frozen):
    method: Method = "GET"
    path: str = Field(min_length=1)
    """A template; starts with /."""
    body: Any = None
    """JSON, a template all the way down."""
    headers: dict[str, str] = Field(default_factory=dict)
    expect: tuple[Int, ...] | Literal["any"] = (200,)
    """Statuses that count as success (``any``: every answer)."""

    @field_validator("expect", mode="before")
    @classmethod
    def _expect(cls, raw: Any) -> Any:
        return _statuses(raw)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return str(_template(value))

    @model_validator(mode="after")
    def _templates(self) -> Request:
        _template(self.body)
        _template(self.headers)
        return self

    def accepts(self, status: int) -> bool:
        return self.expect == "any" or status in self.expect


class Step(Request):
    """One HTTP request of a journey.

    Order: ``when`` (skip the step if false) and ``vars`` before sending; after an
    answer in ``expect``: ``capture``, then ``update``, then ``assert``."""

    when: str | None = None
    vars: dict[str, str] = Field(default_factory=dict)
    """name -> expression, evaluated in order before sending (``vars.name`` after)."""
    capture: dict[str, str] = Field(default_factory=dict)
    """model path -> expression on the answer (``response.order.id``): set."""
    update: tuple[Update, ...] = ()
    assertions: tuple[Assertion, ...] = Field((), alias="assert")
    check: str | None = None
    """The integrity check an unexpected answer or a failed assertion counts under."""
    on_no_answer: Literal["uncertain", "resend"] = "uncertain"
    """uncertain: the model keys it would change are uncertain until read again;
    resend: the same request (same headers, e.g. Idempotency-Key) is sent again
    before anything else, until it is answered."""
    key_header: str | None = None
    """resend: the header naming the request (an idempotency key); a request never
    answered is looked up by it in the SQL checks (``:keys``)."""
    ends_session: bool = False
    """After it (answered or not) the user logs in again: a logout."""

    @model_validator(mode="after")
    def _step(self) -> Step:
        if self.when is not None:
            _expression(self.when)
        for expr in (*self.vars.values(), *self.capture.values()):
            _expression(expr)
        for path in self.capture:
            _template(path)
        if self.check is not None:
            _name(self.check)
        if self.key_header is not None:
            if self.on_no_answer != "resend":
                raise ValueError("key_header applies to on_no_answer: resend")
            if self.key_header.lower() not in {h.lower() for h in self.headers}:
                raise ValueError(f"key_header {self.key_header!r} is not in headers")
        return self

    @property
    def can_find(self) -> bool:
        """Whether the step can record a finding (it checks a status or asserts)."""
        return self.expect != "any" or bool(self.assertions)


class Journey(_Frozen):
    weight: float = Field(ge=0)
    """Relative: how often a user picks this journey."""
    steps: tuple[Step, ...] = Field(min_length=1)
    """Run in order; a step that fails (no answer, unexpected status) ends the journey."""


class Login(Request):
    """How a user starts a session: one request (``user.username``, ``user.password``)."""

    method: Method = "POST"
    capture: dict[str, str] = Field(default_factory=dict)
    resets: tuple[str, ...] = ()
    """Model keys the session holds: back to their initial value at every login."""
    lost_status: tuple[Int, ...] = (401,)
    """An answer that means the session is gone: a session_continuity finding if the
    user believed itself logged in, then it logs in again."""

    @field_validator("lost_status", mode="before")
    @classmethod
    def _lost(cls, raw: Any) -> Any:
        return _statuses(raw)

    @model_validator(mode="after")
    def _captures(self) -> Login:
        for path, expr in self.capture.items():
            _template(path)
            _expression(expr)
        return self


class HttpCheck(Request):
    """Per user, after every stage and at the end: ``GET path``, ``expr`` of the answer's
    body against the model at ``model`` (or the template ``equals``)."""

    name: str
    expr: str
    model: str | None = None
    equals: Any = None
    compare: Literal["equal", "contains"] = "equal"
    """contains: every element (list) or key (object) of the model is in the answer."""

    @model_validator(mode="after")
    def _check(self) -> HttpCheck:
        _name(self.name)
        _expression(self.expr)
        _one_form(self.model, self.equals, "equals" in self.model_fields_set)
        if self.equals is not None:
            _template(self.equals)
        if self.compare == "contains" and self.model is None:
            raise ValueError("compare: contains needs model")
        return self


class Captured(_Frozen):
    """Rows against what the users captured: each captured id once, nothing else."""

    captured: str = Field(min_length=1)
    """Model key holding, per user, a list of ids or of objects with ``id``: other
    fields of such an object must equal the row's column of the same name."""
    id_column: str = "id"
    others: Literal["fail", "ignore"] = "fail"
    """Rows no user captured (nor found by an unanswered key): a failure each."""
    label: str = Field("row", min_length=1, max_length=40)
    """What a row is called in the report (``order``)."""


class SqlCheck(_Frozen):
    """A query against a named database, at the end of the run.

    Binds: ``:usernames`` (the plan's), ``:keys`` (keys of requests never
    answered), ``:run_id``, and every column of ``before``'s row."""

    name: str
    database: str = "stack"
    """A name under the plan's ``databases``; ``stack``: the gateway config's
    database.url (the one ``--stack`` starts)."""
    before: str | None = None
    """Run before the load starts; its one row's columns are bound in the others."""
    query: str = Field(min_length=1)
    keys: str | None = None
    """Rows (with the id column) of requests never answered, found by ``:keys``."""
    expect: Captured | Literal["no_rows"]
    """``no_rows``: any row is a failure (an invariant query)."""

    @model_validator(mode="after")
    def _check(self) -> SqlCheck:
        _name(self.name)
        if self.keys is not None and not isinstance(self.expect, Captured):
            raise ValueError("keys applies to expect: {captured: ...}")
        return self


class Checks(_Frozen):
    http: tuple[HttpCheck, ...] = ()
    sql: tuple[SqlCheck, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Checks:
        sql = [c.name for c in self.sql]
        if len(set(sql)) != len(sql):
            raise ValueError("sql: two checks with one name")
        if set(sql) & {c.name for c in self.http}:
            raise ValueError("an sql check and an http check share a name")
        return self


class Database(_Frozen):
    url: str | None = None
    url_env: str | None = None
    """Environment variable holding the URL (with its password)."""

    @model_validator(mode="after")
    def _one(self) -> Database:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give url or url_env, one of them")
        return self
