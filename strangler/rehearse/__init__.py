"""Rehearsals and drills: prove a cutover and a rollback before doing them for real.

    strangler rehearse PLAN.yaml      scripted stages under synthetic load, with SLO gates
    strangler drill rollback          every route back to legacy mid-traffic, timed

The pieces, each one concept:

    plan.py        the plan file: parsed once into frozen objects, errors by key path
    model.py       what one virtual user believes: login, cart (with unknown outcomes), orders
    users.py       virtual users over HTTP: journeys, honest accounting, per-stage checks
    stats.py       every request the users made: windows, percentiles, the timeline
    promtext.py    the gateway's /metrics: traffic per route and backend, fallbacks
    gates.py       SLO gates judged against a window (pure)
    integrity.py   the orders table against the orders the users placed
    client.py      HTTP to the shop and the admin API
    stack.py       the whole demo stack started by the run itself (``--stack``)
    faults.py      a delay-injecting TCP proxy and the fault actions on stack processes
    runner.py      the engine: stages, checkpoints, breaches, rollback, the drill stage
    report.py      report.json; calls the two below (a run works without them)
    live.py        the live terminal display (rich)
    report_html.py the self-contained report.html with its charts
    cli.py         ``strangler rehearse`` and ``strangler drill rollback``
"""
