"""The CIS Kubernetes benchmark (kube-bench v0.15.6, cis-1.12), built here from its Go
module, run inside every master and worker of the lab, told where kubesalt keeps each
component's unit and files: every check runs, nothing fails that is not on the known list
(``kube_bench.KNOWN_FAILS``, each entry with its reason), and the README answers every
warning."""

from kubesalt_lab import kube_bench
from tests.conftest import REPO
from tests.lab.conftest import quiet


def test_kube_bench_runs_every_check_and_fails_only_the_known_ones(applied):
    reports = kube_bench.run_all(applied, quiet)
    masters = [n.id for n in applied.ordered_nodes() if "master" in n.roles]
    workers = [n.id for n in applied.ordered_nodes() if "worker" in n.roles]
    assert {k: [r.node for r in found] for k, found in reports.items()} == {
        "master": masters,
        "worker": workers,
    }
    for kind, found in reports.items():
        for report in found:
            counted = report.passed + report.failed + report.warned + report.info
            listed = sum(len(checks) for checks in report.checks.values())
            # cis-1.12: 106 checks for a master's four targets, 25 for a worker's node target.
            assert counted == listed >= {"master": 100, "worker": 20}[kind], (kind, report)
            failed = {number for number, _text in report.checks.get("FAIL", [])}
            unexpected = failed - set(kube_bench.KNOWN_FAILS[kind])
            assert not unexpected, (report.node, sorted(unexpected), report.checks["FAIL"])
            # Told where kubesalt's files are, kube-bench finds every one of them: the
            # checks of the units' and configs' modes pass.
            passed = {number for number, _text in report.checks.get("PASS", [])}
            wanted = {"master": {"1.1.1", "1.1.3", "1.1.5", "1.1.7", "1.1.11", "1.1.12"}}
            assert wanted.get(kind, {"4.1.1", "4.1.5", "4.1.9"}) <= passed, (report.node, passed)


def test_every_warning_is_answered_in_the_readme(applied):
    """A WARN is a check kube-bench leaves to a person: the README's table answers each."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### What kube-bench leaves to you") :]
    reports = kube_bench.run_all(applied, quiet)
    warned = {n for found in reports.values() for r in found for n, _ in r.checks.get("WARN", [])}
    answered = set()
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| check"):
            answered |= checks_named(line.split("|")[1])
    assert warned <= answered, sorted(warned - answered)


def checks_named(cell):
    """The check numbers a table cell names: ``1.1.9, 1.1.10`` or ``5.2.2 to 5.2.6``."""
    found = set()
    for part in cell.split(","):
        first, _, last = part.strip().partition(" to ")
        if last:
            stem, start = first.rsplit(".", 1)
            found |= {f"{stem}.{n}" for n in range(int(start), int(last.rsplit(".", 1)[1]) + 1)}
        else:
            found.add(first)
    return found


def test_table_cells_name_single_checks_and_ranges():
    assert checks_named(" 1.1.9, 1.1.10 ") == {"1.1.9", "1.1.10"}
    assert checks_named("5.2.7 to 5.2.9, 5.2.11") == {"5.2.7", "5.2.8", "5.2.9", "5.2.11"}
