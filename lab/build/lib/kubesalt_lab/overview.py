"""What ``kubesalt-lab status`` shows: every node's units and their health, etcd's
members, the leader leases and the last repairs, asked of the nodes through Salt.
"""

import kubesalt_core.components
from kubesalt_lab import (
    bgp,
    containers,
    master,
    report,
)


def status(lab):
    """Per node: host state, minion, and every unit kubesalt manages for its roles."""
    up_nodes = [n for n in lab.nodes if containers.leader(lab, n)]
    answers = master.ping(lab, up_nodes) if up_nodes and master.master_pid(lab) else {}
    hosts, units = [], []
    served = master.lab_pillar(lab)
    for node in lab.ordered_nodes():
        system = containers.system_state(lab, node)
        if system == "down" and containers.root_dir(lab, node).exists():
            system = "stopped"  # powered off with its disk kept (kubesalt-lab stop)
        minion = "answers" if answers.get(node.id) else "silent"
        minion = minion if system not in ("down", "stopped") else "-"
        hosts.append([node.id, ",".join(node.roles), node.ip, system, minion])
        managed = kubesalt_core.components.managed_units(node.roles)
        node_artifacts = served.config().get("artifacts") or {}
        if system in ("down", "stopped"):
            units += [[node.id, unit, f"host {system}"] for unit in managed]
            continue
        shown = containers.inside(
            lab,
            node,
            [
                "systemctl",
                "show",
                "-p",
                "Id,LoadState,ActiveState,SubState,UnitFileState",
                *managed,
            ],
            check=False,
        ).stdout
        for props in report.parse_systemctl_show(shown):
            component = kubesalt_core.components.BY_UNIT.get(props.get("Id"))
            needed = [node_artifacts.get(a) for a in component.artifacts_needed]
            artifact = None if None in needed else needed[0]
            units.append([node.id, props.get("Id"), report.unit_state(props, artifact)])
    return {
        "hosts": hosts,
        "units": units,
        "health": component_health(lab, answers),
        "leases": leader_leases(lab, answers),
        "etcd": etcd_members(lab, answers),
        "bgp": bgp.sessions(lab) or [["-", "-", "-", "no router up"]],
        "repairs": recent_repairs(lab, answers),
    }


def recent_repairs(lab, answers, last=10):
    """The healing loop's latest records across the nodes whose minion answers, newest
    last: node, when, unit, what was done, whether it held, detail."""
    ids = [n.id for n in lab.ordered_nodes() if answers.get(n.id)]
    if not ids:
        return [["-", "-", "-", "-", "-", "no minion answers"]]
    ret = master.run_salt(
        lab, ",".join(ids), "kubesalt_heal.history", f"last={last}", timeout=30, list_target=True
    )
    rows = []
    for node in ids:
        records = ret.get(node)
        if not isinstance(records, list):
            rows.append([node, "-", "-", "-", "-", str(records)[:100]])
            continue
        rows += [
            [node, r["at"], r["unit"], r["action"], "yes" if r["held"] else "no", r["detail"][:80]]
            for r in records
        ]
    rows.sort(key=lambda row: row[1])
    return rows[-last:] or [["-", "-", "-", "-", "-", "no repairs yet"]]


def component_health(lab, answers):
    """Each component's own answer to its health probe (``kubesalt_unit.health``), per node."""
    ids = [n.id for n in lab.ordered_nodes() if answers.get(n.id)]
    if not ids:
        return [["-", "-", "-", "no minion answers"]]
    ret = master.run_salt(lab, ",".join(ids), "kubesalt_unit.health", timeout=60, list_target=True)
    rows = []
    for node in ids:
        found = ret.get(node)
        if not isinstance(found, dict):
            rows.append([node, "-", "-", str(found)[:100]])
            continue
        rows += [
            [node, unit, "yes" if a["healthy"] else "no", f"{a['url']}: {a['detail']}"[:110]]
            for unit, a in found.items()
        ]
    return rows or [["-", "-", "-", "no component with a health probe runs"]]


def leader_leases(lab, answers):
    """Who holds the scheduler's and the controller-manager's leader lease, as the first
    answering master's apiserver says."""
    masters = [n.id for n in lab.ordered_nodes() if "master" in n.roles and answers.get(n.id)]
    if not masters:
        return [["-", "no master minion answers"]]
    ret = master.run_salt(lab, masters[0], "kubesalt_manifest.leases", timeout=30).get(masters[0])
    if not isinstance(ret, dict):
        return [["-", str(ret)[:120]]]
    wanted = ("kube-scheduler", "kube-controller-manager")
    return [[name, (ret.get(name) or {}).get("holder") or "none"] for name in wanted]


def etcd_members(lab, answers):
    """etcd's own view, asked of the first master whose minion answers: one row per member
    (name, kind, healthy, leader, raft index, error), or one row saying why there is none."""
    masters = [n.id for n in lab.ordered_nodes() if "master" in n.roles and answers.get(n.id)]
    if not masters:
        return [["-", "-", "-", "-", "-", "no master minion answers"]]
    ret = master.run_salt(lab, masters[0], "kubesalt_etcd.status", timeout=30).get(masters[0])
    if not isinstance(ret, list):
        return [["-", "-", "-", "-", "-", str(ret)[:120]]]
    return [
        [
            row["name"] or "(not started)",
            "learner" if row["is_learner"] else "voter",
            "yes" if row["healthy"] else "no",
            "leader" if row["leader"] else "",
            str(row.get("raft_index", "-")),
            row["error"] or "",
        ]
        for row in ret
    ]


def status_tables(shown):
    return (
        report.table(["node", "roles", "ip", "systemd", "minion"], shown["hosts"])
        + "\n\n"
        + report.table(["node", "unit", "state"], shown["units"])
        + "\n\n"
        + report.table(["node", "unit", "healthy", "answer"], shown["health"])
        + "\n\n"
        + report.table(["leader lease", "holder"], shown["leases"])
        + "\n\n"
        + report.table(
            ["etcd member", "kind", "healthy", "leader", "raft index", "error"], shown["etcd"]
        )
        + "\n\n"
        + report.table(["router", "bgp session", "state", "info"], shown["bgp"])
        + "\n\n"
        + report.table(["node", "at (UTC)", "unit", "repair", "held", "detail"], shown["repairs"])
    )
