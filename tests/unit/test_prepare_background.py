"""The harness's background preparation (tests/support/prepare.py), with real processes."""

import time

from kubesalt_lab.system import alive
from tests.support.prepare import Background


def test_wait_returns_the_exit_status_and_tells_where_it_is(tmp_path):
    background = Background(
        tmp_path / "logs" / "prepare.log",
        argv=["sh", "-c", "echo building; sleep 1.5; echo done; exit 3"],
    )
    background.start()
    said = []
    assert background.wait(said.append, every=0.5) == 3
    assert said and all(line.startswith("waiting for `kubesalt-lab prepare`") for line in said)
    assert background.last_line() == "done"
    assert background.log.read_text() == "building\ndone\n"


def test_a_background_never_started_is_not_waited_for(tmp_path):
    background = Background(tmp_path / "prepare.log")
    assert background.wait(lambda _m: None) is None
    background.stop()  # nothing to end


def test_stop_ends_the_process_and_what_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    background = Background(
        tmp_path / "prepare.log",
        argv=["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"],
    )
    background.start()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    background.stop()
    assert background.proc.returncode is not None
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, f"the child {child} outlived stop()"
        time.sleep(0.05)
