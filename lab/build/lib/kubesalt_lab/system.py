"""Running commands and handling processes the lab started."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubesalt_lab.config import LabError


def run(argv, check=True, timeout=120, input=None):
    """Run argv (no shell) and return the CompletedProcess; raise LabError on failure."""
    try:
        proc = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, input=input
        )
    except FileNotFoundError as err:
        raise LabError(f"{argv[0]} is not installed (run `make setup`)") from err
    except subprocess.TimeoutExpired as err:
        raise LabError(f"{' '.join(map(str, argv))} did not finish in {timeout}s") from err
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise LabError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {detail}")
    return proc


def alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except FileNotFoundError:
        return []


def read_pid(path):
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def stop_pids(pids, grace=10.0, group=False, at_once=False):
    """SIGTERM every pid (or its process group), wait up to grace seconds for all of them
    together, then SIGKILL the ones left (``at_once``: SIGKILL only, no chance to clean up)."""
    send = os.killpg if group else os.kill
    pids = [p for p in pids if p]
    for sig in (signal.SIGKILL,) if at_once else (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                send(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            for pid in pids:
                _reap(pid)
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.1)


def _reap(pid):
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def start_daemon(argv, log_path, pid_file, host, port, what):
    """Start a lab daemon in its own session (output appended to ``log_path``), record its
    PID in ``pid_file`` and wait until it listens on ``host:port``; returns the PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    with log:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")

    def listening():
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    wait_until(listening, 30, what=f"{what} on {host}:{port}")
    return proc.pid


@dataclass(frozen=True)
class HostDaemon:
    """A daemon the lab runs on this host, outside the nodes: its PID file and log under the
    lab's run directory, its address, and ``marker``, a word of its command line that proves
    a recorded PID is still ours (a PID file outlives its process, and PIDs are reused)."""

    name: str
    what: str
    port: int

    def pid_file(self, run_dir):
        return Path(run_dir) / "pids" / self.name

    def pid(self, run_dir, marker):
        """The PID of the running daemon, or None."""
        found = read_pid(self.pid_file(run_dir))
        if found and alive(found) and str(marker) in cmdline(found):
            return found
        return None

    def start(self, run_dir, argv, host, marker):
        """Start it unless it runs already; returns its PID once it listens."""
        log = Path(run_dir) / f"{self.name}.log"
        return self.pid(run_dir, marker) or start_daemon(
            argv, log, self.pid_file(run_dir), host, self.port, self.what
        )

    def stop(self, run_dir, marker):
        stop_pids([self.pid(run_dir, marker)], grace=5)
        self.pid_file(run_dir).unlink(missing_ok=True)
