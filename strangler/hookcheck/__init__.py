"""``strangler hook check``: hold any monolith's session-export hook to docs/protocol.md §4.

The check knows nothing about the monolith behind the URL: it makes its own
throwaway session through the hook (an import under an id it generated), runs
every rule against that session and an id nobody has, and deletes it at the
end. It never reads or writes a session it did not create.

The pieces, each one concept:

    client.py    HTTP to the hook: one timeout per request, no exception for a
                 missing answer (a ``Reply`` without a status says why)
    results.py   the rules' names and promises, and what a rule saw (``RuleResult``)
    jsondiff.py  the round-trip payload, strict JSON comparison, canonical text
    context.py   what the rules share: the hook, the check's two ids, what was learnt
    rules_*.py   one async function per rule over a ``Run``; each reads the state
                 it needs and leaves the session as the next rule can use it
    runner.py    the order, the skips, the clean-up
    render.py    a rich table on a terminal, plain lines otherwise, or JSON
    cli.py       argument parsing, exit codes (needs no config.yaml)
"""
