"""The lab tier: the example cluster as real systemd-nspawn hosts with a real salt-master.

It uses the lab's default places (the rootfs cache is shared with `make lab`; a lab that is
already running is taken down first, since there is one lab bridge per machine).

Bringing fresh hosts up and converging them takes minutes, so the modules run in an order
that shares one lab among all that do not need fresh hosts (see MODULE_ORDER). Each module
still runs alone: it brings up (or finds up) what it needs.
"""

import subprocess
import warnings
from pathlib import Path

import pytest

from kubesalt_lab import config, converge, lifecycle, workloads
from kubesalt_lab.system import wait_until
from tests.conftest import REPO

LAB_CLI = [str(REPO / ".venv" / "bin" / "kubesalt-lab")]


# The Kubernetes upgrade starts from fresh hosts on the previous minor version, and the
# next module from fresh hosts on the pinned one (its own down and up); every module after
# it works on the lab as the one before left it (the removal of a worker last), until
# `test_lab_down.py` takes it down;
# the etcd upgrade starts from fresh hosts again (etcd cannot go back a minor version).
MODULE_ORDER = (
    "test_lab_upgrade.py",
    "test_lab_units.py",
    "test_lab.py",
    "test_lab_control_plane.py",
    "test_lab_workers.py",
    "test_lab_admission_webhook.py",
    "test_lab_network_policy.py",
    "test_lab_conformance.py",
    "test_lab_bgp.py",
    "test_lab_ingress.py",
    "test_lab_kube_bench.py",
    "test_lab_hardening.py",
    "test_lab_units_heal.py",
    "test_lab_lost_master.py",
    "test_lab_etcd.py",
    "test_lab_etcd_restore.py",
    "test_lab_remove_worker.py",
    "test_lab_down.py",
    "test_lab_etcd_upgrade.py",
)
LAB_DIR = Path(__file__).parent


def pytest_collection_modifyitems(session, config, items):
    """Run the lab's modules in MODULE_ORDER, in the places the lab's tests hold among all
    collected items (the other tiers keep theirs)."""
    slots = [i for i, item in enumerate(items) if item.path.parent == LAB_DIR]
    unknown = {items[i].path.name for i in slots} - set(MODULE_ORDER)
    if unknown:
        raise pytest.UsageError(f"tests/lab/conftest.py: add {sorted(unknown)} to MODULE_ORDER")
    ordered = sorted((items[i] for i in slots), key=lambda t: MODULE_ORDER.index(t.path.name))
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


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
def lab(lab_cache):
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
def applied(first_apply, lab_up):
    """The lab after the module's first apply, which must have failed nowhere."""
    lab, _ = lab_up
    for node_id, summary in first_apply.items():
        assert (summary["failed"], summary["errors"]) == (0, []), node_id
    return lab


@pytest.fixture(scope="module")
def first_apply(lab_up):
    """The module's first `kubesalt-lab apply`: a summary per node.

    On hosts that ran already (the lab an earlier module left, converged) every node is
    applied at once; the waves (masters, workers, routers) run when hosts just booted, and
    again when the run of every node at once did not converge."""
    lab, up = lab_up
    if not up["booted"]:
        together = converge.apply(lab, quiet, together=True)
        unsettled = {n: s["errors"][:2] for n, s in together.items() if s["failed"] or s["errors"]}
        if not unsettled:
            return together
        # Shown in the run's warnings summary: what sent this module to the slower waves.
        warnings.warn(f"the run of every node at once did not converge: {unsettled}", stacklevel=1)
    return converge.apply(lab, quiet)


def second_run(lab, first):
    """A highstate of every node after ``first`` (``{node: summary}``): ``first`` itself
    when it changed nothing anywhere (it ran on hosts an earlier highstate had converged,
    so it already is that second run), else a new run of every node at once."""
    if all(summary["changed"] == 0 for summary in first.values()):
        return first
    return converge.apply(lab, quiet, together=True)


@pytest.fixture(scope="module")
def cluster(lab_up, first_apply):
    """The lab converged (the module's first apply failed nowhere) with every worker Ready."""
    lab, _ = lab_up
    for node_id, summary in first_apply.items():
        assert (summary["failed"], summary["errors"]) == (0, []), (node_id, summary)
    workers = sorted(n.id for n in lab.nodes if "worker" in n.roles)
    wait_until(lambda: workloads.ready_nodes(lab) == workers, 120, interval=1, what="nodes Ready")
    return lab
