"""`kubesalt-lab prepare` in the background while the first tiers run.

From nothing cached, building every component and the conformance suite is the longest
part of `make test` (tens of minutes on 2 cores), and the unit, functional and integration
tiers leave much of the machine idle. The harness starts the preparation at nice 19 when
the session holds built or lab tests (so the tests running beside it keep their share),
and the first fixture that needs the cache waits for it. With a warm cache it finds
everything built in seconds.

The preparation only fills the cache: when it fails, the fixtures' own build calls run
again in the foreground and fail with the real message.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class Background:
    """One ``kubesalt-lab prepare`` process, its output in ``log``."""

    ARGV = ("nice", "-n", "19", sys.executable, "-m", "kubesalt_lab", "prepare")

    def __init__(self, log, argv=ARGV):
        self.log = Path(log)
        self.argv = list(argv)
        self.proc = None
        self.started = None

    def start(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its go processes in its own group, ended with it
            )
        self.started = time.monotonic()
        return self.proc.pid

    def last_line(self):
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def wait(self, say, every=60):
        """Wait for the process (telling ``say`` where it is at once, then every ``every``
        seconds); its exit status, or None when it was never started."""
        if self.proc is None:
            return None
        told = time.monotonic() - every
        while self.proc.poll() is None:
            if time.monotonic() - told >= every:
                say(f"waiting for `kubesalt-lab prepare`: {self.last_line() or 'starting'}")
                told = time.monotonic()
            time.sleep(1)
        return self.proc.returncode

    def stop(self):
        """End the process and the builds it started, if it still runs (a session that
        ended early)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
