"""Kubernetes' conformance suite against the lab: every [Conformance] spec of the cluster's
Kubernetes version ([Serial] ones included), its duration and its pass rate.

Brings the lab up and applies it when it is not running (a running lab is used as it is),
then runs `kubesalt-lab conformance` with --procs parallel Ginkgo processes. Prints a table,
each failure with its reason, and the same as a Markdown table for the README; writes
bench/results/conformance.json. The JUnit report stays in the run's report directory.

    .venv/bin/python bench/conformance.py [--procs N] [--focus REGEX]
"""

import argparse

from common import RESULTS, say

from kubesalt_lab import config, conformance, containers, converge, lifecycle, master, report


def ensure_lab(lab):
    """Use a running, applied lab; otherwise bring one up and apply it."""
    first = next(n for n in lab.ordered_nodes() if "master" in n.roles)
    if containers.nspawn_pid(lab, first):
        return "running lab"
    lifecycle.up(lab, say)
    applied = converge.apply(lab, say)
    failed = {n: s["errors"] for n, s in applied.items() if s["failed"] or s["errors"]}
    if failed:
        raise SystemExit(f"apply failed: {failed}")
    return "fresh lab"


def markdown(result):
    lines = [
        "| passed | failed | skipped | took |",
        "|---|---|---|---|",
        f"| {result.passed} | {result.failed} | {result.skipped} | {result.seconds / 60:.0f} min |",
    ]
    if result.failures:
        lines += ["", "| failed spec | reason |", "|---|---|"]
        for name, reason in result.failures:
            lines.append(f"| {name} | {reason.replace('|', '/')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=conformance.DEFAULT_PROCS)
    parser.add_argument("--focus", help="only these specs (default: every conformance spec)")
    args = parser.parse_args()
    lab = config.load()
    started_with = ensure_lab(lab)
    kubeconfig = conformance.write_kubeconfig(lab)
    tools = conformance.build_tools(lab, say, master.lab_pillar(lab).versions())
    conformance.check_api(tools, kubeconfig)
    names = conformance.selected_specs(tools, kubeconfig, args.focus)
    conformance.publish_images(lab, tools, say)
    report_dir = conformance.default_report_dir(lab)
    result = conformance.run(tools, kubeconfig, report_dir, say, names, args.focus, args.procs)
    rows = [
        ["kubernetes", tools.kubernetes_version],
        ["lab", started_with],
        ["parallel processes", args.procs],
        ["specs selected", result.selected],
        *conformance.summary_rows(result),
        ["pass rate", f"{100 * result.passed / max(1, result.selected):.1f} %"],
    ]
    print(report.table(["conformance", "value"], rows))
    for name, reason in result.failures:
        print(f"FAILED {name}\n       {reason}")
    print()
    print(markdown(result))
    report.write_json(
        RESULTS / "conformance.json",
        {
            "kubernetes": tools.kubernetes_version,
            "focus": args.focus,
            "procs": args.procs,
            "selected": result.selected,
            "passed": result.passed,
            "failed": result.failed,
            "skipped": result.skipped,
            "seconds": round(result.seconds, 1),
            "failures": [{"spec": n, "reason": r} for n, r in result.failures],
            "report_dir": str(result.report_dir),
        },
    )


if __name__ == "__main__":
    main()
