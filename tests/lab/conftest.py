"""The lab tier: the example cluster as real systemd-nspawn hosts with a real salt-master.

It uses the lab's default places (the rootfs cache is shared with `make lab`; a lab that is
already running is taken down first, since there is one lab bridge per machine).
"""

import subprocess
from pathlib import Path

import pytest

from kubesalt_lab import config, lifecycle
from tests.conftest import REPO

LAB_CLI = [str(REPO / ".venv" / "bin" / "kubesalt-lab")]


def quiet(_message):
    pass


def leftovers_seen_by_the_system(lab):
    """What the host itself says is left, independently of the lab's own bookkeeping."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [line for line in netns.splitlines() if line.startswith(config.PREFIX)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [line for line in links.splitlines() if f": {config.PREFIX}" in line]
    with open("/proc/mounts") as mounts:
        found += [
            line
            for line in mounts
            if str(lab.run_dir) in line or line.split()[1].startswith("/run/netns/" + config.PREFIX)
        ]
    # `ip netns add` made /run/netns a mount point; with no namespace left it must be gone.
    netns_dir = Path("/run/netns")
    if netns_dir.is_dir() and not any(netns_dir.iterdir()):
        with open("/proc/mounts") as mounts:
            found += [line for line in mounts if line.split()[1] == str(netns_dir)]
    return found


@pytest.fixture(scope="session")
def lab():
    lab = config.load()
    lifecycle.down(lab, quiet)
    yield lab
    lifecycle.down(lab, quiet)


@pytest.fixture(scope="module")
def lab_up(lab):
    """The lab brought up (or found up) for one test module: ``(lab, what up reported)``."""
    result = lifecycle.up(lab, quiet)
    return lab, result


@pytest.fixture(scope="module")
def first_apply(lab_up):
    """The module's first `kubesalt-lab apply`: a summary per node."""
    lab, _ = lab_up
    return lifecycle.apply(lab, quiet)
