"""The ``strangler`` command line: the composition root.

It may import every part (gateway, flags, legacy_shop, new_services); no
part imports it. Each long-running command runs one component in this
process; ``demo`` starts them all as child processes.
"""
