"""Test harness: tiers by directory, real salt daemons, real etcd.

- ``tests/unit``: decision logic only.
- ``tests/functional``: Salt's loader in-process with this repo's state tree (no daemons).
- ``tests/integration``: a real salt-master and salt-minions (pytest-salt-factories) whose
  file_roots and pillar_roots are this repo; real etcd members from Debian's etcd-server.
- ``tests/built``: every component built from its Go module (the lab's build cache), asked
  about what kubesalt renders for it.
- ``tests/lab``: the multi-host lab.

Daemons write under a short temporary root (unix socket paths must stay under 108 bytes).
"""

import shutil
import tempfile
from pathlib import Path

import pytest
import salt._logging.impl
import yaml
from saltfactories.plugins.event_listener import EventListener

from kubesalt_lab import master as lab_master
from tests.support import etcd

REPO = Path(__file__).resolve().parents[1]
STATES_DIR = REPO / "states"
PILLAR_DIR = REPO / "pillar"

# Minions the integration tier starts: one per role of the lab pillar, plus one that the
# pillar does not know.
CLUSTER_MINIONS = ("master-1", "worker-1", "router-1")
# This host has no systemd, and packages must not be installed on it: highstates here leave
# out the SLS that install artifacts and run units (the lab tier applies them in systemd
# containers; tests/functional/test_units.py proves the units by render).
HOST_EXCLUDE = ",".join(
    [
        "kubesalt.etcd",
        "kubesalt.artifacts",
        "kubesalt.units",
        "kubesalt.units.kernel",
        "kubesalt.cluster_objects",
    ]
)
STRANGER_MINION = "stranger-1"

_TIERS = ("unit", "functional", "integration", "built", "lab")


LOOPBACK = "127.0.0.1"


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionstart(session):
    # salt-factories' log server binds 0.0.0.0 by default; keep every socket on loopback.
    log_server = session.config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:
        log_server.log_host = LOOPBACK
    yield


def pytest_sessionfinish():
    # Salt buffers log records of in-process loaders in a deferred stderr handler that it
    # flushes at exit, after pytest has closed its capture streams; hand them to pytest now.
    salt._logging.impl.shutdown_temp_handler()


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' event listener, bound to loopback instead of 0.0.0.0."""
    listener = EventListener()
    listener.host = LOOPBACK
    listener.address = f"tcp://{LOOPBACK}:{listener.port}"
    with listener:
        yield listener


def pytest_collection_modifyitems(items):
    for item in items:
        parts = Path(item.fspath).relative_to(REPO / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def salt_factories_config():
    root = tempfile.mkdtemp(prefix="ks-")
    # slow_stop=False: daemons get SIGTERM and are not waited on politely (saves ~20 s).
    yield {"root_dir": root, "slow_stop": False}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def node_roots(tmp_path_factory):
    """Directory under which each minion's kubesalt paths:root lives (<dir>/<minion id>)."""
    return tmp_path_factory.mktemp("node-roots")


@pytest.fixture(scope="session")
def test_pillar_tree(tmp_path_factory, node_roots):
    """A pillar overlay: the repo's lab pillar plus paths:root under a temp dir per minion.

    It comes first in pillar_roots, so its top.sls wins; the `kubesalt` SLS is still the
    repo's own pillar/kubesalt/init.sls.
    """
    tree = tmp_path_factory.mktemp("pillar-overlay")
    (tree / "top.sls").write_text(
        "base:\n  '*':\n    - kubesalt\n    - kubesalt_test_paths\n    - kubesalt_test_pki\n"
    )
    (tree / "kubesalt_test_paths.sls").write_text(
        "kubesalt:\n  paths:\n    root: " + str(node_roots) + '/{{ opts["id"] }}\n'
    )
    write_test_pki_pillar(tree, {})
    return tree


# master-2 and master-3 of the lab pillar never run here: a master must not wait for their
# service-account keys.
TEST_PKI_DEFAULTS = {"service_account_wait_seconds": 0}


def write_test_pki_pillar(tree, pki):
    """Set ``kubesalt:pki`` overrides for the integration tier (then refresh pillar)."""
    text = yaml.safe_dump({"kubesalt": {"pki": {**TEST_PKI_DEFAULTS, **pki}}})
    (tree / "kubesalt_test_pki.sls").write_text(text)


@pytest.fixture(scope="session")
def salt_master(salt_factories, test_pillar_tree):
    config = {
        "file_roots": {"base": [str(STATES_DIR)]},
        "pillar_roots": {"base": [str(test_pillar_tree), str(PILLAR_DIR)]},
        "interface": LOOPBACK,
        "log_level_logfile": "info",
        # What conf/master.d/kubesalt.conf tells users to configure.
        "peer": lab_master.peer_config(),
    }
    master = salt_factories.salt_master_daemon("kubesalt-master", overrides=config)
    with master.started():
        yield master


def cluster_minion(salt_master, minion_id):
    overrides = {"log_level_logfile": "info", "master": LOOPBACK}
    return salt_master.salt_minion_daemon(minion_id, overrides=overrides)


@pytest.fixture(scope="session")
def salt_minions(salt_master):
    """Started minions by id: the lab pillar's master-1, worker-1, router-1 and a stranger."""
    minions = {mid: cluster_minion(salt_master, mid) for mid in (*CLUSTER_MINIONS, STRANGER_MINION)}
    for minion in minions.values():
        minion.start()
    yield minions
    for minion in minions.values():
        minion.terminate()


@pytest.fixture(scope="session")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=120)


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory):
    """Start real etcd clusters: ``etcd_cluster(3)`` -> EtcdCluster on 127.0.0.1.

    Every member started through this fixture is SIGKILLed when the session ends.
    """
    started = []

    def start(size):
        cluster = etcd.start_cluster(size, tmp_path_factory.mktemp(f"etcd-{size}"))
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.kill()
