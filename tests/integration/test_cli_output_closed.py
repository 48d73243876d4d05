"""A command whose output goes to a reader that has gone (``strangler ... | head -1``)
ends quietly: no traceback, and never a wrong diagnosis -- ``flags`` once said
"cannot reach Redis" when only its stdout had closed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit.procs import ROOT


@pytest.mark.parametrize("argv", [
    ["check-config"],
    ["flags", "--redis-url", "redis://127.0.0.1:6379/0", "list"],
], ids=["check-config", "flags-list"])
def test_a_closed_stdout_is_no_error_of_ours(argv: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "strangler", "--config",
                               str(ROOT / "config.yaml"), *argv],
                              stdout=write_end, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 141, (done.returncode, done.stderr)
    assert done.stderr == "", done.stderr
