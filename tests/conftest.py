"""Test harness: tiers by directory, real salt daemons, real etcd.

- ``tests/unit``: decision logic only.
- ``tests/functional``: Salt's loader in-process with this repo's state tree (no daemons).
- ``tests/integration``: a real salt-master and salt-minions (pytest-salt-factories) whose
  file_roots and pillar_roots are this repo; real etcd members from Debian's etcd-server.
- ``tests/built``: every component built from its Go module (the lab's build cache), asked
  about what kubesalt renders for it.
- ``tests/lab``: the multi-host lab.

They run in that order; `make test` runs the lab tier in one process and the others beside
it in a second (pytest-xdist), since the lab's tests mostly wait. When built or lab tests
are selected, `kubesalt-lab prepare` fills the lab's cache in the background at nice 19
while the first tiers run (``lab_cache`` waits for it; ``KUBESALT_TEST_PREPARE=0`` turns
it off; under pytest-xdist it must be off).

Daemons write under a short temporary root (unix socket paths must stay under 108 bytes).
This file imports no Salt and no daemon code at the top: a unit-tier run loads neither.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from kubesalt_lab import config as lab_config
from tests.support import prepare

REPO = Path(__file__).resolve().parents[1]
STATES_DIR = REPO / "states"
PILLAR_DIR = REPO / "pillar"

# This host has no systemd, and packages must not be installed on it: highstates here leave
# out the SLS that install artifacts and run units (the lab tier applies them in systemd
# containers; tests/functional/test_units.py proves the units by render).
HOST_EXCLUDE = ",".join(
    [
        "kubesalt.etcd",
        "kubesalt.etcd.snapshots",
        "kubesalt.artifacts",
        "kubesalt.units",
        "kubesalt.units.kernel",
        "kubesalt.cluster_objects",
    ]
)

# The order the tiers run in: the quick ones first; the built and lab tiers wait for the
# lab's cache, which `kubesalt-lab prepare` fills in the background meanwhile.
_TIERS = ("unit", "functional", "integration", "built", "lab")
_NEEDS_LAB_CACHE = ("built", "lab")


LOOPBACK = "127.0.0.1"
_PREPARE = pytest.StashKey()


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionstart(session):
    # salt-factories' log server binds 0.0.0.0 by default; keep every socket on loopback.
    log_server = session.config.pluginmanager.get_plugin("saltfactories-log-server")
    if log_server is not None:
        log_server.log_host = LOOPBACK
    yield


def pytest_sessionfinish():
    # Salt buffers log records of in-process loaders in a deferred stderr handler that it
    # flushes at exit, after pytest has closed its capture streams; hand them to pytest now
    # (when a tier used Salt at all).
    salt_logging = sys.modules.get("salt._logging.impl")
    if salt_logging is not None:
        salt_logging.shutdown_temp_handler()


@pytest.fixture(scope="session")
def event_listener():
    """salt-factories' event listener, bound to loopback instead of 0.0.0.0."""
    from saltfactories.plugins.event_listener import EventListener

    listener = EventListener()
    listener.host = LOOPBACK
    listener.address = f"tcp://{LOOPBACK}:{listener.port}"
    with listener:
        yield listener


def _tier(item):
    parts = Path(item.fspath).relative_to(REPO / "tests").parts
    return parts[0] if parts and parts[0] in _TIERS else None


def pytest_collection_modifyitems(items):
    for item in items:
        if tier := _tier(item):
            item.add_marker(getattr(pytest.mark, tier))
    # A stable sort: each tier keeps its own order (tests/lab/conftest.py orders the lab's).
    items.sort(key=lambda item: _TIERS.index(_tier(item)) if _tier(item) else len(_TIERS))


def pytest_configure(config):
    if config.getoption("numprocesses", None) and os.environ.get("KUBESALT_TEST_PREPARE") != "0":
        # Each process would fill the lab's cache at once.
        raise pytest.UsageError(
            "with pytest-xdist (-n), run `kubesalt-lab prepare` first and set "
            "KUBESALT_TEST_PREPARE=0 (make test does both)"
        )


def xdist_scope(nodeid):
    """The scope pytest-xdist keeps a test in (see pytest_xdist_make_scheduler)."""
    return "lab" if nodeid.startswith("tests/lab/") else "beside the lab"


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist's `--dist loadscope` (make test) there are two scopes: the lab
    tier, run in one process in its own order, and every other tier, run beside it in a
    second process (the lab's tests mostly wait on the hosts)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LabAndTheRest(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return LabAndTheRest(config, log)


def pytest_collection_finish(session):
    config = session.config
    if config.option.collectonly or os.environ.get("KUBESALT_TEST_PREPARE") == "0":
        return
    if not any(_tier(item) in _NEEDS_LAB_CACHE for item in session.items):
        return
    background = prepare.Background(lab_config.load().cache_dir / "prepare.log")
    pid = background.start()
    config.stash[_PREPARE] = background
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"kubesalt-lab prepare: filling the lab's cache in the background (pid {pid}, "
            f"nice 19; log {background.log})"
        )


def pytest_unconfigure(config):
    background = config.stash.get(_PREPARE, None)
    if background is not None:
        background.stop()


@pytest.fixture(scope="session")
def lab_cache(pytestconfig):
    """Waits for the background `kubesalt-lab prepare`; its exit status (None: not run)."""
    background = pytestconfig.stash.get(_PREPARE, None)
    if background is None:
        return None
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def say(message):
        # Fixtures run under output capture: the progress line goes past it to the terminal.
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(message)

    status = background.wait(say)
    if status:
        say(f"kubesalt-lab prepare exited {status} (see {background.log}); building here")
    return status


@pytest.fixture(scope="session")
def salt_factories_config():
    root = tempfile.mkdtemp(prefix="ks-")
    # slow_stop=False: daemons get SIGTERM and are not waited on politely (saves ~20 s).
    yield {"root_dir": root, "slow_stop": False}
    shutil.rmtree(root, ignore_errors=True)
