"""math-verify under a wall-clock bound that holds in any thread and in any process.

math-verify bounds itself with ``signal.alarm``: off the main thread the alarm cannot be set and every check
silently returns False, and even on the main thread a computation in C (sympy evaluating ``10^{10^{8}}``) runs
to its end before the alarm's handler can act. So the checks run in one helper process per process that needs
them, started on first use with ``subprocess`` (which works in daemonic worker processes too, where
``multiprocessing`` may not start children) and fed one JSON line per check; math-verify's own timeouts are
off in the helper. A check that outruns its bound kills the helper, starts the next one at once (it imports
sympy while the caller goes on) and counts as not verified. Only the scorer's symbolic path (a gold answer that
is not a number) comes here; numeric golds never reach math-verify.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time

SECONDS = 0.5  # per check: math-verify takes ~2-50 ms on a short expression; the scorer's whole call stays < 1 s
START_SECONDS = 120.0  # the helper's start (importing sympy): ~1-2 s idle, far more on a loaded 2-core machine

# The helper: reads [gold, answer] JSON lines, answers "1" / "0". sys.path[0] ('' under -c) is dropped so that a
# file in the caller's working directory cannot shadow a library.
_SERVE = """
import json, sys
sys.path.pop(0)
from math_verify import parse, verify
def check(gold, answer):
    try:
        return bool(verify(parse(gold, parsing_timeout=None), parse(answer, parsing_timeout=None),
                           timeout_seconds=None))
    except Exception:
        return False
check("$1$", "$1$")
out = sys.stdout.buffer
out.write(b"ready\\n"); out.flush()
for line in sys.stdin.buffer:
    gold, answer = json.loads(line)
    out.write(b"1\\n" if check(gold, answer) else b"0\\n"); out.flush()
"""

log = logging.getLogger(__name__)


class _Helper:
    """The helper process of this process (a forked child starts its own), one check at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.owner = 0
        self.ready = False
        self.buf = b""

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, close_fds=True)
        self.owner, self.ready, self.buf = os.getpid(), False, b""

    def stop(self) -> None:
        if self.proc is not None and self.owner == os.getpid():
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def readline(self, seconds: float) -> bytes | None:
        """The helper's next line, or None when it did not come within ``seconds`` (or the helper died)."""
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        poller = select.poll()  # not select.select: it fails on descriptors above 1023
        poller.register(fd, select.POLLIN)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def check(self, gold: str, answer: str, seconds: float) -> bool | None:
        """math-verify's verdict, or None when the check outran ``seconds`` or no helper could run."""
        with self.lock:
            if self.proc is None or self.owner != os.getpid() or self.proc.poll() is not None:
                self.start()
            if not self.ready:
                if self.readline(START_SECONDS) != b"ready":
                    log.warning("math-verify helper did not start; symbolic answers score 0")
                    self.stop()
                    return None
                self.ready = True
            try:
                self.proc.stdin.write(json.dumps([gold, answer]).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError:
                self.stop()
                return None
            line = self.readline(seconds)
            if line is None:  # outran its bound: kill it, and let the next helper import while the caller goes on
                self.stop()
                self.start()
                return None
            return line == b"1"


_HELPER = _Helper()
atexit.register(_HELPER.stop)
if hasattr(os, "register_at_fork"):  # a forked child must neither share nor kill its parent's helper
    os.register_at_fork(after_in_child=lambda: _HELPER.__init__())


def _in_process(gold: str, answer: str) -> bool:
    """Fallback where no helper can run (no ``poll`` on pipes, as on Windows): math-verify's own timeout on
    the main thread, none off it (the scorer's pre-screen still bounds the input)."""
    from math_verify import parse, verify

    main = threading.current_thread() is threading.main_thread()
    t = 1 if main else None
    try:
        return bool(verify(parse(gold, parsing_timeout=t), parse(answer, parsing_timeout=t), timeout_seconds=t))
    except Exception:  # math-verify raises on input it cannot parse: not verified
        return False


def verify(gold: str, answer: str, seconds: float = SECONDS) -> bool:
    """math-verify's equivalence of two LaTeX strings (``$..$``-delimited), within ``seconds`` of wall clock
    after the helper is up; False when it outruns them."""
    if not hasattr(select, "poll"):
        return _in_process(gold, answer)
    try:
        return bool(_HELPER.check(gold, answer, seconds))
    except OSError:  # the helper could not be started
        return _in_process(gold, answer)


def warm() -> None:
    """Start the helper now (the first symbolic check would otherwise wait for sympy's import)."""
    verify("$1$", "$1$", START_SECONDS)
