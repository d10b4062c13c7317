"""etcd snapshots as data: their names, the sha256 record sha256sum reads, etcdutl's status,
and which are pruned."""

from datetime import UTC, datetime

import pytest

import kubesalt_core.etcd_snapshot as snap


def test_a_name_says_cluster_time_and_member():
    when = datetime(2026, 12, 4, 22, 0, 5, tzinfo=UTC)
    name = snap.name_for("lab", "master-1", when)
    assert name == "lab-20261204T220005Z-master-1.db"
    assert snap.is_snapshot(name) and snap.taken_at(name) == when
    assert not snap.is_snapshot("lab-20261204T220005Z-master-1.db.sha256")
    assert not snap.is_snapshot(".lab-20261204T220005Z-master-1.db.part")
    assert snap.taken_at("notes.txt") is None


def test_the_sha256_record_is_what_sha256sum_writes_and_reads():
    digest = "a" * 64
    line = snap.sha256_line(digest, "lab-20261204T220005Z-master-1.db")
    assert line == f"{digest}  lab-20261204T220005Z-master-1.db\n"
    assert snap.recorded_sha256(line, "lab-20261204T220005Z-master-1.db") == digest
    with pytest.raises(ValueError, match=r"no sha256 recorded for other\.db"):
        snap.recorded_sha256(line, "other.db")
    with pytest.raises(ValueError):
        snap.recorded_sha256("not-hex  x.db\n", "x.db")


def test_the_status_of_a_snapshot_as_etcdutl_prints_it():
    shown = (
        '{"hash":3475209543,"revision":4512,"totalKey":1077,"totalSize":6623232,"version":"3.6.0"}'
    )
    assert snap.parse_status(shown) == {
        "hash": 3475209543, "revision": 4512, "keys": 1077, "size": 6623232,
    }  # fmt: skip
    with pytest.raises(ValueError, match="not a snapshot status"):
        snap.parse_status("Error: snapshot file has no sha")
    with pytest.raises(ValueError, match="not a snapshot status"):
        snap.parse_status('{"hash": 1}')
    assert snap.status_argv(None, "/usr/bin/etcdctl", "/s.db")[:3] == [
        "/usr/bin/etcdctl", "snapshot", "status",
    ]  # fmt: skip
    assert snap.status_argv("/usr/local/bin/etcdutl", "x", "/s.db")[0].endswith("etcdutl")


def test_the_oldest_beyond_keep_are_pruned_and_nothing_else():
    names = [f"lab-2026120{d}T000000Z-master-1.db" for d in range(1, 6)]
    others = ["lab-20261201T000000Z-master-1.db.sha256", "README"]
    assert snap.to_prune(names + others, 3) == names[:2]
    assert snap.to_prune(names, 10) == []
