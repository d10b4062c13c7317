"""The etcd_cluster fixture starts real members that form one cluster."""

import os


def test_three_members_form_one_cluster(etcd_cluster):
    cluster = etcd_cluster(3)
    members = cluster.call("/v3/cluster/member/list")["members"]
    assert sorted(m["name"] for m in members) == ["etcd-0", "etcd-1", "etcd-2"]
    assert not any(m.get("isLearner") for m in members)
    leaders = {cluster.call("/v3/maintenance/status", member=i)["leader"] for i in range(3)}
    assert len(leaders) == 1 and leaders != {"0"}

    cluster.put("/kubesalt/test", "written on etcd-0")
    assert cluster.get("/kubesalt/test", member=2) == "written on etcd-0"


def test_kill_leaves_no_member_running(etcd_cluster):
    cluster = etcd_cluster(1)
    pids = [m.process.pid for m in cluster.members]
    cluster.kill()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)


def _is_zombie(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"
