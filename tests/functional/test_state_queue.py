"""How a kubesalt state run waits for another one on the same node (a repair's re-apply
while a highstate runs, the scheduled highstate while a repair runs): Salt's own
``queue`` argument, with kubesalt_core.heal.STATE_QUEUE, through Salt's loader in-process.

The other run is a real process registered as a state job the way the minion registers
its jobs (a proc file under the cachedir naming its PID, a command line that says salt), so
Salt's own check sees it.
"""

import os
import subprocess
import sys
import time

import pytest
import salt.payload
import salt.utils.jid
from saltfactories.utils.functional import Loaders

import kubesalt_core.heal

BUSY_SECONDS = 3


@pytest.fixture(scope="module")
def queue_loaders(minion_opts):
    """The minion's loaders with jobs in their own processes, as a running minion has them
    (Salt only counts a proc file of another process as a job going on then)."""
    loaders = Loaders({**minion_opts, "multiprocessing": True})
    yield loaders
    loaders.reset_state()


def _wait_for_command_line(pid, word, seconds=10):
    """Wait until ``/proc/PID/cmdline`` holds ``word``. Popen returns once the child has
    begun its exec, and the kernel fills in the new command line a little later: on a
    busy host Salt can read it empty in between and drop the job as "not a salt process"."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if word in cmdline.read():
                return
        time.sleep(0.01)
    raise AssertionError(f"PID {pid}'s command line never showed {word!r}")


@pytest.fixture
def state_run_going_on(minion_opts, request):
    """A state.highstate job that runs for BUSY_SECONDS (or as long as the test, with
    ``@pytest.mark.parametrize("state_run_going_on", [None], indirect=True)``), as Salt's
    job table shows it."""
    seconds = getattr(request, "param", BUSY_SECONDS) or 3600
    proc_dir = os.path.join(minion_opts["cachedir"], "proc")
    os.makedirs(proc_dir, exist_ok=True)
    # Salt checks that the PID is a salt process (its command line says "salt").
    busy = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep({seconds})", "salt-state-job"]
    )
    _wait_for_command_line(busy.pid, b"salt-state-job")
    jid = salt.utils.jid.gen_jid(minion_opts)
    job = {"fun": "state.highstate", "jid": jid, "pid": busy.pid, "arg": [], "tgt": "master-1"}
    with open(os.path.join(proc_dir, jid), "wb") as proc_file:
        salt.payload.dump(job, proc_file)
    started = time.monotonic()
    yield busy, started
    busy.kill()
    busy.wait()


def test_kubesalts_queue_waits_for_the_run_going_on_then_runs(queue_loaders, state_run_going_on):
    busy, started = state_run_going_on
    ret = queue_loaders.modules.state.single(
        "test.succeed_without_changes",
        "after-the-other-run",
        queue=kubesalt_core.heal.STATE_QUEUE,
    )
    waited = time.monotonic() - started
    # It ran (a real state result), and only once the other run had ended.
    assert ret.result is True and ret.name == "after-the-other-run", ret.raw
    assert busy.poll() is not None and waited >= BUSY_SECONDS - 0.5, waited


# The other run lasts as long as this test: on a loaded host, BUSY_SECONDS could pass
# before the call below is made.
@pytest.mark.parametrize("state_run_going_on", [None], indirect=True, ids=["running"])
def test_without_a_queue_the_run_going_on_is_reported_as_a_conflict(
    queue_loaders, state_run_going_on
):
    # (salt-factories' wrapper raises on an answer that is not a state run's: Salt's list
    # of conflicts.)
    with pytest.raises(TypeError, match=r'The function "state\.highstate" is running as PID'):
        queue_loaders.modules.state.single("test.succeed_without_changes", "now")
