"""Rehearsals and drills: prove a cutover and a rollback before doing them for real.

    strangler rehearse PLAN.yaml      scripted stages under synthetic load, with SLO gates
    strangler drill rollback          every route back to legacy mid-traffic, timed

The pieces, each one concept:

    plan.py        the plan file: parsed once into frozen objects, errors by key path
    plan_steps.py  the app-specific half: login, journeys of HTTP steps, integrity checks
    template.py    JMESPath expressions and {placeholder} templates of the steps
    model.py       what one virtual user believes: a JSON model, with uncertain keys
    users.py       virtual users over HTTP: the plan's journeys, per-stage HTTP checks
    stats.py       every request the users made: windows, percentiles, the timeline
    promtext.py    the gateway's /metrics: traffic per route and backend, fallbacks
    gates.py       SLO gates judged against a window (pure)
    integrity.py   the checks as report entries; SQL checks against named databases
    client.py      HTTP to the app and the admin API
    stack.py       the whole demo stack started by the run itself (``--stack``)
    faults.py      a delay-injecting TCP proxy and the fault actions on stack processes
    runner.py      the engine: stages, checkpoints, breaches, rollback, the drill stage
    report.py      report.json; calls the two below (a run works without them)
    live.py        the live terminal display (rich)
    report_html.py the self-contained report.html with its charts
    cli.py         ``strangler rehearse`` and ``strangler drill rollback``
"""
