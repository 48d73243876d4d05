"""Shadow: copies of safe requests to new, compared, never waited for.

It owns the stage (``stage``), the comparison rules (``compare``) and what was
seen per route (``stats``).
"""
