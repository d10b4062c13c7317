"""A minion with the journal beacon, as conf/minion.d/kubesalt.conf configures it: its jobs
use the kubesalt_core on disk, not the copy the beacon imported in the minion's main process
(every job process is forked from it), so a sync or an upgrade reaches the next job without
a minion restart."""

from pathlib import Path

import pytest

from kubesalt_ext import __version__ as VERSION
from kubesalt_lab.system import wait_until
from tests.conftest import LOOPBACK

MINION = "beacon-1"


@pytest.fixture(scope="module")
def beacon_minion(salt_master):
    overrides = {
        "master": LOOPBACK,
        # Salt says at trace level each time it processes a beacon (loading it the first time).
        "log_level_logfile": "trace",
        "beacons": {"kubesalt_journal": [{"interval": 1}]},
    }
    minion = salt_master.salt_minion_daemon(MINION, overrides=overrides)
    with minion.started():
        yield minion


def _beacon_runs(minion):
    text = Path(minion.config["log_file"]).read_text(errors="replace")
    return text.count("Beacon processing: kubesalt_journal")


def test_a_job_imports_the_shared_package_on_disk_not_the_beacons_copy(beacon_minion, salt_cli):
    # The beacon ran (and so imported kubesalt_core, from the pip install) before any job.
    wait_until(lambda: _beacon_runs(beacon_minion) >= 2, 60, interval=0.5,
               what="the journal beacon processed twice")  # fmt: skip
    synced = salt_cli.run("saltutil.sync_all", minion_tgt=MINION)
    assert synced.returncode == 0, synced.stderr
    shared = Path(beacon_minion.config["extension_modules"]) / "utils" / "kubesalt_core"
    ret = salt_cli.run("kubesalt.loaded_from", minion_tgt=MINION)
    assert ret.data["shared"] == str(shared), ret.data
    assert ret.data["version"] == VERSION, ret.data

    # A newer copy lands on disk, as the sync of an upgraded kubesalt brings it: the next
    # job uses it, with no minion restart and no module refresh.
    init = shared / "__init__.py"
    source = init.read_text()
    assert f'__version__ = "{VERSION}"' in source
    init.write_text(source.replace(f'__version__ = "{VERSION}"', '__version__ = "99.0.0"'))
    ret = salt_cli.run("kubesalt.loaded_from", minion_tgt=MINION)
    assert ret.data["version"] == "99.0.0", ret.data
    # And the beacon still works from what it had imported.
    runs = _beacon_runs(beacon_minion)
    wait_until(lambda: _beacon_runs(beacon_minion) > runs, 30, interval=0.5,
               what="the journal beacon processed again")  # fmt: skip
    log = Path(beacon_minion.config["log_file"]).read_text(errors="replace")
    assert "The beacon errored" not in log and "Unable to process beacon" not in log
