"""Real processes on free loopback ports, for the tests, the benchmarks and rehearsals.

Free ports and waiting (``net``), child processes started, waited on, killed and
restarted (``procs``), signing keys and session profiles as the stacks use them
(``keys``, ``profiles``), whole stacks of real processes (``stack``: the shop;
``notes_stack``: the second monolith, whose apps live in tests/apps), a private
Redis server (``redis_proc``) and the clients that drive them (``shop``,
``notes_user``). And, where no process is wanted, in-memory doubles of the gateway's
two seams (``fakes``: the session store and a backend).

It may import ``gateway``, ``flags`` and ``adapters``, never ``strangler``,
``bench`` or ``tests`` (``tests/unit/test_dependency_rule.py``): the stacks run
``python -m strangler`` as child processes, they do not import it.
"""
