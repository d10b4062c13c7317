"""The integration tier's daemons: a real salt-master and salt-minions (pytest-salt-factories)
whose file_roots and pillar_roots are this repo, and real etcd clusters on 127.0.0.1.

Every daemon here is package-scoped: it stops when the tier's last test ends, so none of
them keeps a core busy while the lab tier runs after it.
"""

import pytest
import yaml

from kubesalt_lab import local_etcd as etcd
from kubesalt_lab import master as lab_master
from tests.conftest import LOOPBACK, PILLAR_DIR, STATES_DIR

# Minions the integration tier starts: one per role of the lab pillar, plus one that the
# pillar does not know.
CLUSTER_MINIONS = ("master-1", "worker-1", "router-1")
STRANGER_MINION = "stranger-1"


@pytest.fixture(scope="module")
def synced(salt_cli, salt_minions):
    """saltutil.sync_all on every minion: the file_roots route for the custom modules."""
    ret = salt_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0, ret.stderr
    return ret.data


@pytest.fixture(scope="package")
def node_roots(tmp_path_factory):
    """Directory under which each minion's kubesalt paths:root lives (<dir>/<minion id>)."""
    return tmp_path_factory.mktemp("node-roots")


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
def salt_minions(salt_master):
    """Started minions by id: the lab pillar's master-1, worker-1, router-1 and a stranger."""
    minions = {mid: cluster_minion(salt_master, mid) for mid in (*CLUSTER_MINIONS, STRANGER_MINION)}
    for minion in minions.values():
        minion.start()
    yield minions
    for minion in minions.values():
        minion.terminate()


@pytest.fixture(scope="package")
def salt_cli(salt_master):
    return salt_master.salt_cli(timeout=120)


@pytest.fixture(scope="package")
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
