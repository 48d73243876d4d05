"""Rules 6 and 9: what an import may carry, and what it may not.

Rule 6 sends ``jsondiff.ROUNDTRIP_DATA`` as written (raw bytes, not re-encoded
by Python) and wants every value back, then imports the export as it came and
wants them once more: that is the trip a session makes through the gateway.
"""

from __future__ import annotations

from strangler.hookcheck.client import import_body
from strangler.hookcheck.context import Run, State
from strangler.hookcheck.jsondiff import ROUNDTRIP_DATA, kept, roundtrip_data
from strangler.hookcheck.results import Checks, RuleResult


def _unreadable(checks: Checks, state: State) -> RuleResult:
    checks.expect("GET", "200 with a revision", state.reply, False)
    return checks.result()


async def roundtrip(run: Run) -> RuleResult:
    checks = Checks("roundtrip")
    start = await run.state()
    if start.revision is None:
        return _unreadable(checks, start)
    sent = roundtrip_data()
    raw = f'{{"data": {ROUNDTRIP_DATA}, "expected_revision": {start.revision}}}'
    reply = await run.hook.put(run.sid, raw.encode("utf-8"))
    if not checks.expect("import", "200", reply, reply.status == 200):
        return checks.result()
    first = await run.state()
    diff = kept(sent, first.data)
    checks.expect("export", "every value as sent", diff or "as sent", diff is None)
    if first.revision is None or not isinstance(first.data, dict):
        return checks.result()
    again = await run.hook.put(run.sid, import_body(first.data, first.revision))
    if not checks.expect("import of that export", "200", again, again.status == 200):
        return checks.result()
    second = await run.state()
    diff = kept(sent, second.data)
    checks.expect("export after that", "every value as sent", diff or "as sent", diff is None)
    return checks.result(f"{len(sent)} keys (nested objects, floats, big ints, escapes and "
                         "raw UTF-8, empty containers, null, booleans) identical, twice")


async def limits(run: Run) -> RuleResult:
    checks = Checks("limits")
    start = await run.state()
    if start.revision is None:
        return _unreadable(checks, start)
    size = run.oversize_bytes
    big = b'{"data": {"hookcheck_big": "%s"}, "expected_revision": %d}' % (
        b"x" * size, start.revision)
    reply = await run.hook.put(run.sid, big)
    checks.expect(f"an import of {_size(len(big))}", "413", reply, reply.status == 413)
    for what, body in (("a body cut short", b'{"data": {"hookcheck_by": "strangler'),
                       ("a body of plain text", b"this is not JSON")):
        reply = await run.hook.put(run.sid, body)
        checks.expect(what, "400", reply, reply.status == 400)
    end = await run.state()
    same = end.same_as(start)
    checks.expect("the session after", f"revision {start.revision}, data unchanged",
                  f"revision {end.revision}" + ("" if same else ", data changed"), same)
    return checks.result(f"413 for {_size(len(big))}; 400 for a body cut short and for "
                         "plain text; nothing changed")


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"
