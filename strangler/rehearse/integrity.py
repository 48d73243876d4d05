"""Integrity checks as report entries: the users' findings, and the plan's SQL checks.

An SQL check runs a query against a named database (SQLAlchemy, async) after
the load has stopped. ``before`` runs at preflight; its row's columns are
bound in the later queries (``:last_id``), with ``:usernames`` (the plan's
accounts), ``:keys`` (keys of requests never answered) and ``:run_id``.

``expect: {captured: KEY}``: every id the users captured under model key KEY
appears exactly once in the rows (and other captured fields equal the row's
columns of the same name); a row no user captured is a failure, unless a
request that never got an answer is found by its key (``keys`` query): it was
done, the user just never heard. ``expect: no_rows``: any row is a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from strangler.rehearse.model import show
from strangler.rehearse.plan_steps import Captured, SqlCheck
from strangler.rehearse.users import SESSION, Finding

MAX_LISTED = 50
_BIND = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
EXPANDING = ("usernames", "keys")


class DatabaseError(Exception):
    """A database could not be read; the message names the check and why."""


async def query(url: str, sql: str, binds: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``sql`` as column -> value; only the binds it names are passed."""
    named = set(_BIND.findall(sql))
    missing = named - set(binds)
    if missing:
        raise DatabaseError(f"unknown bind(s) {', '.join(sorted(missing))} "
                            f"(known: {', '.join(sorted(binds))})")
    statement = text(sql)
    expanding: list[Any] = [bindparam(n, expanding=True) for n in EXPANDING if n in named]
    if expanding:
        statement = statement.bindparams(*expanding)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(statement, {n: binds[n] for n in named})
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


@dataclass
class SqlResult:
    failures: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    learned: int = 0
    """Requests never answered that the database shows were done."""
    rows: int = 0
    captured: int = 0


@dataclass(frozen=True, slots=True)
class Capture:
    user: int
    username: str
    value: Any


def compare_rows(expect: Captured, captured: list[Capture], rows: list[dict[str, Any]],
                 learned_ids: list[Any]) -> SqlResult:
    """Rows against what the users captured (pure)."""
    out = SqlResult(rows=len(rows), captured=len(captured))
    col, label = expect.id_column, expect.label
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(str(row.get(col)), []).append(row)
    known: set[str] = set()
    for c in captured:
        fields = c.value if isinstance(c.value, dict) else {col: c.value}
        ident = str(fields.get(col))
        who = f"user {c.user} ({c.username})"
        known.add(ident)
        found = by_id.get(ident, [])
        if not found:
            out.lost += 1
            out.failures.append(f"{label} #{ident} of {who}: missing from the database")
        elif len(found) > 1:
            out.duplicated += len(found) - 1
            out.failures.append(f"{label} #{ident} of {who}: {len(found)} rows")
        else:
            differ = {k: v for k, v in fields.items()
                      if k != col and str(found[0].get(k)) != str(v)}
            if differ:
                out.failures.append(
                    f"{label} #{ident} of {who}: the database has "
                    f"{show({k: found[0].get(k) for k in differ})}, the user was told "
                    f"{show(differ)}")
    for ident in {str(i) for i in learned_ids}:
        if ident not in known:
            out.learned += 1
            known.add(ident)
    if expect.others == "fail":
        for ident, found in sorted(by_id.items()):
            if ident not in known:
                out.duplicated += len(found)
                out.failures.append(f"{label} #{ident} ({show(found[0])}) is in the "
                                    "database, but no user placed it: a duplicate?")
    return out


class SqlChecks:
    """The plan's SQL checks: ``prepare()`` before the load, ``run()`` after it."""

    def __init__(self, checks: tuple[SqlCheck, ...], urls: dict[str, str],
                 binds: dict[str, Any]) -> None:
        self.checks, self.urls, self.binds = checks, urls, dict(binds)
        self.before: dict[str, dict[str, Any]] = {}

    def _url(self, check: SqlCheck) -> str:
        return self.urls[check.database]

    async def prepare(self) -> None:
        """Run every ``before`` query; raise DatabaseError naming the check."""
        for i, check in enumerate(self.checks):
            if check.before is None:
                continue
            try:
                rows = await query(self._url(check), check.before, self.binds)
            except Exception as exc:
                raise DatabaseError(f"checks.sql[{i}].before ({check.name}): {exc}") from exc
            if len(rows) != 1:
                raise DatabaseError(f"checks.sql[{i}].before ({check.name}): "
                                    f"{len(rows)} rows, needs exactly one")
            self.before[check.name] = rows[0]

    async def run(self, captured: dict[str, list[Capture]], keys: list[str]
                  ) -> tuple[list[dict[str, Any]], list[SqlResult]]:
        """One report entry per check; the results (the drill counts rows lost)."""
        entries, results = [], []
        for check in self.checks:
            binds = {**self.binds, "keys": keys, **self.before.get(check.name, {})}
            try:
                result = await self._one(check, captured, binds)
            except Exception as exc:  # any driver's error: the check failed, say why
                result = SqlResult(failures=[f"database {check.database!r}: {exc}"[:500]])
                entries.append(entry(check.name, result.failures, result.failures[0]))
                results.append(result)
                continue
            results.append(result)
            entries.append(entry(check.name, result.failures, _detail(check, result)))
        return entries, results

    async def _one(self, check: SqlCheck, captured: dict[str, list[Capture]],
                   binds: dict[str, Any]) -> SqlResult:
        rows = await query(self._url(check), check.query, binds)
        if isinstance(check.expect, str):  # no_rows
            return SqlResult(rows=len(rows), failures=[f"row {show(r)}" for r in rows])
        learned: list[Any] = []
        if check.keys is not None and keys_of(binds):
            col = check.expect.id_column
            learned = [r.get(col) for r in await query(self._url(check), check.keys, binds)]
        return compare_rows(check.expect, captured.get(check.expect.captured, []), rows,
                            learned)


def keys_of(binds: dict[str, Any]) -> list[str]:
    return list(binds.get("keys") or [])


def _detail(check: SqlCheck, r: SqlResult) -> str:
    if isinstance(check.expect, str):
        return f"{r.rows} row(s), none expected"
    label = check.expect.label
    return (f"{r.captured} {label}s placed by the users, {r.rows} rows in the database; "
            f"{r.lost} missing, {r.duplicated} not placed by anyone; {r.learned} unanswered "
            "request(s) found done by their key")


def entry(name: str, failures: list[str], detail: str) -> dict[str, Any]:
    return {"name": name, "passed": not failures, "detail": detail,
            "failures": failures[:MAX_LISTED]}


def user_checks(findings: list[Finding], unverified: list[tuple[str, str]], users: int,
                stages_checked: int, names: list[str]) -> list[dict[str, Any]]:
    """The checks the users made against their models, as report entries.

    A check that got no answer mid-run (during a fault) proves nothing either
    way and is only counted; one that got none at the end fails the run."""
    out = []
    final = [what for stage, what in unverified if stage == "final"]
    for name in names:
        failures = [f.text() for f in findings if f.check == name]
        detail = (f"{users} users checked at the end of {stages_checked} stage(s) and of the "
                  f"run: {len(failures)} difference(s)")
        if name == SESSION:
            failures += final  # a final check never made proves nothing
            if len(unverified) > len(final):
                detail += (f"; {len(unverified) - len(final)} mid-run check(s) got no answer "
                           "and were made at the next stage")
        out.append(entry(name, failures, detail))
    return out
