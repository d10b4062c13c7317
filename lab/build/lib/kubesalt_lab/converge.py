"""Converging the lab: highstates of its nodes, all at once or in waves by role (the
order a site applies a new cluster in), with a test=True run first when the prediction is
checked against what changed.
"""

import time

from kubesalt_lab import (
    bgp,
    containers,
    master,
    report,
    rootfs,
)
from kubesalt_lab.config import LabError


def minion_diagnosis(lab, nodes):
    """For each silent node: systemd's view of its minion and the minion's last log lines."""
    seen = []
    for node in nodes:
        try:
            active = containers.inside(
                lab, node, ["systemctl", "is-active", rootfs.MINION_UNIT_NAME], check=False
            ).stdout.strip()
            # The minion logs its jobs to its own file; its journal has only what it printed.
            tail = containers.inside(
                lab, node, ["tail", "-n", "3", "/var/log/salt/minion"], check=False
            ).stdout.strip().replace("\n", " | ")  # fmt: skip
        except LabError as err:
            active, tail = "unknown", str(err)
        seen.append(f"{node.id} ({rootfs.MINION_UNIT_NAME} {active}: {tail[-400:]})")
    return "; ".join(seen) or "none (the salt CLI itself did not answer)"


def apply_waves(lab, roles=None, together=False):
    """The order a cluster comes up in: all masters at once (their first runs wait for each
    other's service-account keys), then all workers (they need the apiservers), then the
    routers (their sessions are with the workers' BIRD). ``roles`` keeps only the nodes
    that have one of them (``None``: every node); ``together`` puts them in one wave."""
    ordered = [n for n in lab.ordered_nodes() if roles is None or set(n.roles) & set(roles)]
    waves = []
    for role in ("master", "worker"):
        wave = [n for n in ordered if role in n.roles and not any(n in w for w in waves)]
        if wave:
            waves.append(wave)
    rest = [n for n in ordered if not any(n in w for w in waves)]
    waves += [rest] if rest else []
    return [[n for wave in waves for n in wave]] if together and waves else waves


def apply(lab, progress, roles=None, together=False, sls=None):
    """Highstate wave by wave (see :func:`apply_waves`; ``roles`` limits it to the nodes
    with one of them); a summary per node. ``together`` runs every node at once instead:
    the waves matter while a cluster is being built, not on one that converged already.
    ``sls`` applies that SLS instead of the highstate."""
    results = {}
    waves = apply_waves(lab, roles, together)
    for wave in waves:
        names = ", ".join(n.id for n in wave)
        progress(f"apply {names} ...")
        start = time.monotonic()
        ret = master.run_salt(
            lab,
            ",".join(n.id for n in wave),
            "state.apply",
            *([sls] if sls else []),
            timeout=600,
            list_target=True,
        )
        seconds = time.monotonic() - start
        for node in wave:
            summary = report.summarize_highstate(ret.get(node.id, ret.get("_error", "no return")))
            summary["seconds"] = round(seconds, 1)
            results[node.id] = summary
            progress(
                f"apply {node.id}: {summary['ok']} ok, {summary['changed']} changed, "
                f"{summary['failed']} failed ({seconds:.1f}s for {names})"
            )
            for error in summary["errors"]:
                progress(f"  {node.id}: {error}")
    applied = {r for wave in waves for n in wave for r in n.roles}
    if {"router", "worker"} <= applied:
        # The routers' sessions with the workers' BIRD (calico-bird, configured by confd).
        bgp.wait_established(lab, progress)
    return results


def predict_then_apply(lab, progress):
    """The first highstate of fresh hosts, wave by wave, each wave run with test=True just
    before the real run: per node ``{predicted, changed, dry_seconds, seconds}``."""
    results = {}
    for wave in apply_waves(lab):
        ids = ",".join(n.id for n in wave)
        progress(f"test=True {ids} ...")
        start = time.monotonic()
        dry = master.run_salt(lab, ids, "state.apply", "test=True", timeout=600, list_target=True)
        dry_seconds = time.monotonic() - start
        progress(f"apply {ids} ...")
        start = time.monotonic()
        real = master.run_salt(lab, ids, "state.apply", timeout=600, list_target=True)
        seconds = time.monotonic() - start
        for node in wave:
            results[node.id] = {
                "predicted": report.changed_ids(dry.get(node.id, dry.get("_error"))),
                "changed": report.changed_ids(real.get(node.id, real.get("_error"))),
                "summary": report.summarize_highstate(real.get(node.id, "no return")),
                "dry_seconds": round(dry_seconds, 2),
                "seconds": round(seconds, 2),
            }
    return results


def apply_table(lab, results):
    rows = [
        [
            node.id,
            ",".join(node.roles),
            r["ok"],
            r["changed"],
            r["failed"] or len(r["errors"]),
            f"{r['seconds']:.1f}s",
        ]
        for node in lab.ordered_nodes()
        if (r := results.get(node.id))
    ]
    return report.table(["node", "roles", "ok", "changed", "failed", "duration"], rows)
