"""The repair reactor through Salt's own Reactor (map lookup, render, compile): which events
become a kubesalt_heal.repair job, and for whom. Only the final publish is left out; the lab
tests run the whole loop on real hosts."""

import pytest
import salt.config
import salt.utils.reactor

from kubesalt_lab import master as lab_master
from tests.conftest import STATES_DIR

TAG = "salt/beacon/worker-1/kubesalt_journal/failed"


@pytest.fixture(scope="module")
def reactor(tmp_path_factory):
    root = tmp_path_factory.mktemp("reactor-master")
    opts = salt.config.master_config(None)
    opts.update(
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        file_roots={"base": [str(STATES_DIR)]},
        # The map users copy (conf/master.d/kubesalt.conf), pointed at this checkout.
        reactor=lab_master.master_snippet()["reactor"],
    )
    reactor = salt.utils.reactor.Reactor(opts)
    yield reactor
    reactor.minion.destroy()


def _jobs(reactor, data, tag=TAG):
    return reactor.reactions(tag, data, reactor.list_reactors(tag))


def _event(**fields):
    return {
        "id": "worker-1",
        "unit": "containerd.service",
        "invocation_id": "0123456789abcdef0123456789abcdef",
        "result": "start-limit-hit",
        "time": 1764000000.0,
        "restarts": 4,
        **fields,
    }


def test_the_map_sends_only_the_beacons_failures_to_the_repair(reactor):
    assert [p.rsplit("/", 2)[-2:] for p in reactor.list_reactors(TAG)] == [
        ["reactor", "repair.sls"]
    ]
    assert reactor.list_reactors("salt/beacon/worker-1/inotify//etc") == []
    assert reactor.list_reactors("kubesalt/unit/escalated") == []


def test_a_failure_becomes_one_repair_on_the_reporting_minion(reactor):
    (job,) = _jobs(reactor, _event())
    assert job["state"] == "local"
    assert job["fun"] == "kubesalt_heal.repair"
    assert (job["tgt"], job["tgt_type"]) == (["worker-1"], "list")
    assert [dict(a) for a in job["args"]] == [
        {"unit": "containerd.service"},
        {"invocation_id": "0123456789abcdef0123456789abcdef"},
        {"result": "start-limit-hit"},
    ]


@pytest.mark.parametrize(
    ("data", "tag"),
    [
        (_event(id="*"), "salt/beacon/*/kubesalt_journal/failed"),  # a glob for an id
        (_event(id="worker-2"), TAG),  # the data names another minion than the tag
        (_event(id="worker-1,master-1"), "salt/beacon/worker-1,master-1/kubesalt_journal/failed"),
        (_event(id=["worker-1"]), TAG),
        (_event(unit="containerd.service; reboot"), TAG),
        (_event(unit="../../etc/shadow"), TAG),
        (_event(unit="containerd.socket"), TAG),  # kubesalt manages services only
        (_event(unit=["containerd.service"]), TAG),
        ({"id": "worker-1"}, TAG),  # no unit at all
    ],
    ids=[
        "glob-id",
        "id-not-the-tags",
        "id-list-in-a-string",
        "id-not-a-string",
        "unit-with-shell",
        "unit-a-path",
        "unit-not-a-service",
        "unit-not-a-string",
        "no-unit",
    ],
)
def test_a_malformed_or_forged_event_gets_no_job(reactor, data, tag):
    assert _jobs(reactor, data, tag) == []


def test_fields_that_only_inform_are_dropped_when_odd(reactor):
    (job,) = _jobs(reactor, _event(invocation_id="$(reboot)", result={"x": 1}))
    assert [dict(a) for a in job["args"]][1:] == [{"invocation_id": None}, {"result": None}]
