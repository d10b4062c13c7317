"""`down` leaves nothing behind: after a lab that runs, and after an `up` that was killed
half-way."""

import signal
import subprocess
import time

from kubesalt_lab import containers, lifecycle, master
from tests.lab.conftest import LAB_CLI, leftovers_seen_by_the_system, quiet


def test_down_leaves_nothing(lab_up):
    lab, _ = lab_up
    nspawns = [containers.nspawn_pid(lab, n) for n in lab.nodes]
    master_pid = master.master_pid(lab)
    lifecycle.down(lab, quiet)
    assert lifecycle.leftovers_of(lab) == []
    assert leftovers_seen_by_the_system(lab) == []
    for pid in [*nspawns, master_pid]:
        assert not _running(pid), pid


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_down_after_up_was_killed_half_way(lab):
    lifecycle.down(lab, quiet)
    # The builds first (cached: seconds), so the kill lands among the hosts, not a build.
    lifecycle.build_components(lab, quiet)
    up = subprocess.Popen([*LAB_CLI, "up"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = lab.run_dir / "pids"
    deadline = time.monotonic() + 120
    # Kill it once the master and some hosts run, before every minion answers.
    while len(list(pids.glob("*.nspawn"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert lifecycle.leftovers_of(lab), "the killed up should have left things to clean"

    proc = subprocess.run([*LAB_CLI, "down"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert lifecycle.leftovers_of(lab) == []
    assert leftovers_seen_by_the_system(lab) == []
