"""Benchmarks: the gateway against the direct upstream and a plain aiohttp proxy.

Run with ``python -m bench.run`` (or ``make bench``). Never collected by pytest.
"""
