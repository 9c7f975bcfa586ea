"""`python -m hw4` ends as `sys.exit` would, without the interpreter's teardown of every module.

What a normal exit does before the teardown still happens, in its order: threads that are not
daemons finish, atexit handlers run, stdout and stderr reach the pipe; the status and a
`SystemExit` message are Python's own. Only the teardown (module globals cleared, objects
freed one by one: 1.7 s with torch, Lightning and MLflow loaded) is skipped.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, sys, threading, time
from hw4.cli import exit_now

class Teardown:
    def __del__(self):
        print("torn down")  # only when the interpreter clears this module's globals

kept = Teardown()
atexit.register(lambda: print("atexit handler"))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
print("x" * 100_000)  # more than a pipe's buffer: flushed, not lost
exit_now({code})
"""


@pytest.mark.parametrize("code, status, stderr", [("None", 0, ""), ("143", 143, ""), ("'error: bad input'", 1, "error: bad input\n")])
def test_the_exit_keeps_what_an_exit_does_and_skips_the_teardown(code: str, status: int, stderr: str):
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(code=code)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (status, stderr)
    assert done.stdout.splitlines() == ["x" * 100_000, "thread finished", "atexit handler"]


def test_a_plain_exit_would_have_torn_down():
    """The check above can fail: Python's own exit runs the teardown the script detects."""
    script = SCRIPT.format(code="None").replace("exit_now(None)", "sys.exit(None)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "torn down"


def test_a_command_ends_with_its_status_and_message(isolated_workdir):
    done = subprocess.run([sys.executable, "-m", "hw4", "nosuch"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage: python -m hw4 <command>")
