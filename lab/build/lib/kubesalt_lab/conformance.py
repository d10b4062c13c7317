"""Kubernetes' own conformance suite against the lab: upstream's tests, not the project's.

``e2e.test`` and ``ginkgo`` are built from the same ``k8s.io/kubernetes`` version as the
cluster (``recipes.KUBERNETES_TEST``); the images the tests run are made by the lab and
pushed to its registry under the names the suite uses (``e2e_images``). The suite runs on
this machine against the lab's apiservers with a self-contained admin kubeconfig
(:func:`kubeconfig`), as a certification run would from outside the cluster.

    kubeconfig = conformance.write_kubeconfig(lab)
    tools = conformance.build_tools(lab, progress, versions)
    names = conformance.selected_specs(tools, kubeconfig, focus=r"\\[sig-network\\]")
    conformance.publish_images(lab, tools, progress)
    result = conformance.run(tools, kubeconfig, report_dir, progress, names, focus=...)
"""

import base64
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kubesalt_lab import (
    build,
    busybox,
    containers,
    e2e_images,
    images,
    recipes,
    registry,
    toolchain,
)
from kubesalt_lab.config import LabError

ADMIN = "/etc/kubernetes/admin.conf"
# What the suite's [Conformance] specs carry as a Ginkgo label (framework.ConformanceIt).
LABEL = "Conformance"
# Certification runs every conformance spec, the [Disruptive] ones (they taint the
# workers with NoExecute) included; --skip leaves some out.
DEFAULT_SKIP = None
DEFAULT_PROCS = 4
JUNIT = "junit_01.xml"


@dataclass(frozen=True)
class Tools:
    """What a run needs on this machine."""

    e2e: Path
    ginkgo: Path
    kubectl: Path
    kubernetes_version: str
    kubernetes_dir: Path
    programs: dict = field(default_factory=dict, hash=False)


@dataclass
class Result:
    """One run: counts, each failure with its reason, where the report is, how long."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list = field(default_factory=list)  # [(spec, reason)]
    passed_specs: list = field(default_factory=list)
    flaky: list = field(default_factory=list)  # [(spec, why its first attempt failed)]
    seconds: float = 0.0
    report_dir: Path | None = None
    selected: int = 0


# --- the tools -------------------------------------------------------------------------------


def tools_dir(lab, version):
    return Path(lab.cache_dir) / "conformance" / version


def _member(built, member, out_dir):
    """One program of a built archive (``build.Built``) in ``out_dir``, taken out again only
    when the archive changed; written beside and renamed into place, so a program that is
    running (a suite run) is never written over."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / Path(member).name
    stamp = target.with_name(f".{target.name}.from")
    source = f"{built.sha256} {member}\n"
    if target.is_file() and stamp.is_file() and stamp.read_text() == source:
        return target
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".unpack-") as scratch:
        os.replace(images.unpacked(built.path, member, scratch), target)
    stamp.write_text(source)
    return target


def _built(go, lab, recipe, version, progress):
    found = build.build_component(go, lab.cache_dir, recipe, version, progress)
    return {b.artifact: b for b in found}


def build_tools(lab, progress, versions):
    """Build the suite, kubectl and the programs of the suite's images (all cached) and
    take them out of their archives; nothing outside the lab's cache changes. Returns
    :class:`Tools`.

    versions
        The lab pillar's ``versions:`` (the suite follows ``kubernetes``).
    """
    version = str(versions["kubernetes"])
    go = toolchain.ensure(lab.cache_dir, progress)
    test = _built(go, lab, recipes.KUBERNETES_TEST, version, progress)
    server = _built(go, lab, recipes.KUBERNETES, version, progress)
    coredns = _built(go, lab, recipes.COREDNS, str(versions["coredns"]), progress)
    kubernetes_dir = build.module_dir(lab.cache_dir, recipes.KUBERNETES, version)
    refs = e2e_images.manifest(kubernetes_dir)
    etcd_version = e2e_images.etcd_version(refs)
    etcd = _built(go, lab, recipes.ETCD, etcd_version, progress)

    out = tools_dir(lab, version)
    bin_dir, programs_dir = out / "bin", out / "programs"
    suite = test["kubernetes_test"]
    programs = {
        name: _member(test["e2e_image_programs"], name, programs_dir)
        for name in ("agnhost", "nnp", "sample-apiserver")
    }
    programs["coredns"] = _member(coredns["coredns"], "coredns", programs_dir)
    for name in ("etcd", "etcdctl", "etcdutl"):
        member = f"etcd-v{etcd_version}-linux-amd64/{name}"
        programs[name] = _member(etcd["etcd"], member, programs_dir)
    programs["busybox"] = busybox.build_binary(
        lab.cache_dir, e2e_images.busybox_version(refs), progress
    )
    return Tools(
        e2e=_member(suite, "kubernetes/test/bin/e2e.test", bin_dir),
        ginkgo=_member(suite, "kubernetes/test/bin/ginkgo", bin_dir),
        kubectl=_member(server["kubernetes"], "kubernetes/server/bin/kubectl", bin_dir),
        kubernetes_version=version,
        kubernetes_dir=kubernetes_dir,
        programs=programs,
    )


def publish_images(lab, tools, progress):
    """Make the images the suite runs and push them to the lab's registry (an image the
    registry holds already is not sent again); their references."""
    refs = e2e_images.manifest(tools.kubernetes_dir)
    base = e2e_images.base_layer(lab.cache_dir, tools.programs["busybox"], progress)
    _source, pause_tag = images.pause_source(tools.kubernetes_dir)
    made = e2e_images.for_suite(
        refs, tools.programs, tools.kubernetes_dir, base, f"registry.k8s.io/pause:{pause_tag}"
    )
    base_url, known = registry.url(lab), {}
    for image in made:
        before = registry.manifest_digest(base_url, image.repository, image.tag)
        digest, pushed = registry.push(base_url, image, known, lab.layer_cache)
        said = "pushed" if pushed else "in the registry"
        progress(f"image {image.reference}: {said} ({digest[:19]})")
        if pushed and before:
            # Same tag, new content: a kubelet that holds the tag would never pull again.
            forget_image(lab, image.reference, progress)
    return [image.reference for image in made]


def forget_image(lab, reference, progress):
    """Untag ``reference`` in the containerd of every running node that runs pods, so the
    next pod pulls the registry's image (running containers keep theirs)."""
    for node in lab.ordered_nodes():
        if containers.runs_containers(node) and containers.nspawn_pid(lab, node):
            containers.inside(
                lab, node, ["ctr", "-n", "k8s.io", "images", "rm", reference], check=False
            )
            progress(f"image {reference}: {node.id} will pull it again")


def default_report_dir(lab):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path(lab.cache_dir) / "conformance" / "reports" / stamp


# --- a kubeconfig for this machine -----------------------------------------------------------

_FILE_FIELDS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
}


def _first_master(lab):
    """The first master whose host runs (the first of all when none does)."""
    masters = [n for n in lab.ordered_nodes() if "master" in n.roles]
    if not masters:
        raise LabError("the lab's pillar has no master")
    return next((n for n in masters if containers.nspawn_pid(lab, n)), masters[0])


def self_contained(document, read):
    """``document`` (a kubeconfig dict) with every file it names embedded as ``*-data``;
    ``read(path)`` returns a file's bytes."""
    document = json.loads(json.dumps(document))
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in document.get(section) or []:
            body = entry.get(key) or {}
            for name, data_name in _FILE_FIELDS.items():
                if name in body:
                    body[data_name] = base64.b64encode(read(body.pop(name))).decode()
    return document


def kubeconfig(lab):
    """The first running master's admin kubeconfig (its own apiserver's address) with its
    certificates and key embedded: usable from this machine (the masters' addresses are on
    the lab bridge). YAML text."""
    master = _first_master(lab)
    if not containers.nspawn_pid(lab, master):
        raise LabError("no lab is running (kubesalt-lab up, then kubesalt-lab apply)")
    found = containers.inside(lab, master, ["cat", ADMIN], check=False)
    if found.returncode != 0:
        raise LabError(
            f"{master.id} has no {ADMIN} yet: the cluster is not applied (kubesalt-lab apply)"
        )

    def read(path):
        said = containers.inside(lab, master, ["cat", path], check=False)
        if said.returncode != 0:
            raise LabError(f"{master.id}: {path} is not readable: {said.stderr.strip()}")
        return said.stdout.encode()

    return yaml.safe_dump(self_contained(yaml.safe_load(found.stdout), read), sort_keys=False)


def write_kubeconfig(lab):
    """:func:`kubeconfig` written 0600 into the lab's run directory; its path."""
    path = lab.run_dir / "admin.kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(kubeconfig(lab))
    return path


def check_api(tools, kubeconfig_path):
    """The apiserver answers the kubeconfig's user (else a LabError that says so)."""
    said = subprocess.run(
        [str(tools.kubectl), "--kubeconfig", str(kubeconfig_path), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if said.returncode != 0 or said.stdout.strip() != "ok":
        raise LabError(
            f"the lab's apiserver does not answer: {(said.stderr or said.stdout).strip()[:300]}"
        )


# --- choosing and running specs -------------------------------------------------------------


def suite_args(kubeconfig_path, tools, report_dir):
    """The suite's own flags (after ``--``)."""
    return [
        f"--kubeconfig={kubeconfig_path}",
        f"--kubectl-path={tools.kubectl}",
        "--provider=skeleton",
        f"--report-dir={report_dir}",
        # No node of the lab runs pods but the workers; the masters run no kubelet.
        "--non-blocking-taints=node-role.kubernetes.io/control-plane",
    ]


def ginkgo_filters(focus=None, skip=DEFAULT_SKIP):
    """Ginkgo's selection: the conformance label, and the user's focus on spec names."""
    args = [f"--label-filter={LABEL}"]
    if focus:
        args.append(f"--focus={focus}")
    if skip:
        args.append(f"--skip={skip}")
    return args


def check_focus(focus, skip=None):
    """Ginkgo reads --focus and --skip as Go regular expressions; refuse one that is not
    even a Python one before anything runs."""
    for flag, value in (("--focus", focus), ("--skip", skip)):
        if value is None:
            continue
        try:
            re.compile(value)
        except re.error as err:
            raise LabError(f"{flag} {value!r} is not a regular expression: {err}") from None


def selected_specs(tools, kubeconfig_path, focus=None, skip=DEFAULT_SKIP):
    """The names of the specs a run would run: a dry run of the suite, nothing changes.
    Raises LabError when the selection is empty."""
    check_focus(focus, skip)
    with tempfile.TemporaryDirectory(prefix="kubesalt-lab-dry-run-") as scratch:
        report = Path(scratch) / "dry-run.json"
        argv = [
            str(tools.e2e),
            "--ginkgo.dry-run",
            f"--ginkgo.json-report={report}",
            *(f"--ginkgo.{a.removeprefix('--')}" for a in ginkgo_filters(focus, skip)),
            *suite_args(kubeconfig_path, tools, scratch),
        ]
        said = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=scratch)
        if not report.is_file():
            raise LabError(f"e2e.test --ginkgo.dry-run failed: {said.stderr.strip()[-600:]}")
        names = specs_in_report(json.loads(report.read_text()), states=("passed",))
    if not names:
        raise LabError(
            f"--focus {focus!r}{f' with --skip {skip!r}' if skip else ''} selects none of "
            f"the conformance specs of Kubernetes {tools.kubernetes_version}; nothing was run"
        )
    return names


def _its(report):
    for suite in report:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") == "It":
                yield spec


def _spec_text(spec):
    return " ".join([*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText", "")])


def specs_in_report(report, states):
    """Full texts of the It specs in a Ginkgo JSON report whose state is in ``states``."""
    return [_spec_text(spec) for spec in _its(report) if spec.get("State") in states]


def flaky_specs(report):
    """``(spec, why its first attempt failed)`` for each spec of a Ginkgo JSON report that
    passed only on a retry (``--flake-attempts``): Ginkgo keeps the earlier attempts'
    failures as the spec's additional failures."""
    flaky = []
    for spec in _its(report):
        if spec.get("State") != "passed" or (spec.get("NumAttempts") or 1) < 2:
            continue
        earlier = [f.get("Failure") or {} for f in spec.get("AdditionalFailures") or []]
        reason = failure_summary(earlier[0].get("Message", "")) if earlier else "not recorded"
        flaky.append((_spec_text(spec), reason))
    return flaky


# Ginkgo's verbose stream: a spec's end is a line "• [12.345 seconds]" (or "• [FAILED]
# [12.3 seconds]", "S [SKIPPED] ...") followed by the spec's full text.
_SPEC_END = re.compile(
    r"^(•|S)\s*(\[(FAILED|PANICKED|TIMEDOUT|INTERRUPTED|SKIPPED)\])?.*\[[\d.]+ seconds\]"
)


class Progress:
    """Counts the ends of specs in the suite's output and says one line per spec."""

    def __init__(self, total, say):
        self.total, self.say = total, say
        self.done = self.failed = 0
        self._pending = None

    def feed(self, line):
        line = line.rstrip("\n")
        if self._pending is not None:
            if line.strip():
                self._finished(self._pending, line.strip())
                self._pending = None
            return
        match = _SPEC_END.match(line)
        if match:
            self._pending = match.group(3) or ("SKIPPED" if match.group(1) == "S" else "passed")

    def _finished(self, outcome, name):
        self.done += 1
        if outcome not in ("passed", "SKIPPED"):
            self.failed += 1
        self.say(
            f"conformance {self.done}/{self.total} ({self.failed} failed): "
            f"{outcome.lower()} {name[:140]}"
        )


def run(
    tools,
    kubeconfig_path,
    report_dir,
    progress,
    names,
    focus=None,
    procs=DEFAULT_PROCS,
    skip=DEFAULT_SKIP,
    timeout="24h",
    flake_attempts=1,
):
    """Run the conformance specs ``selected_specs`` chose (``names``) with ``procs``
    parallel Ginkgo processes (``[Serial]`` specs run alone at the end, as Ginkgo does),
    a failed spec run up to ``flake_attempts`` times in all; returns :class:`Result`."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    progress(f"conformance: {len(names)} specs, {procs} parallel processes, report in {report_dir}")
    argv = [
        str(tools.ginkgo),
        f"--procs={procs}",
        "-v",
        "--no-color",
        f"--timeout={timeout}",
        f"--json-report={report_dir / 'report.json'}",
        *([f"--flake-attempts={flake_attempts}"] if flake_attempts > 1 else []),
        *ginkgo_filters(focus, skip),
        str(tools.e2e),
        "--",
        *suite_args(kubeconfig_path, tools, report_dir),
    ]
    counter = Progress(len(names), progress)
    started = time.monotonic()
    log_path = report_dir / "e2e.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=report_dir
        )
        done = threading.Event()

        def heartbeat():
            while not done.wait(60):
                progress(
                    f"conformance: {time.monotonic() - started:.0f}s, "
                    f"{counter.done}/{len(names)} done"
                )

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            for line in proc.stdout:
                log.write(line)
                counter.feed(line)
            proc.wait()
        finally:
            done.set()
            beat.join()
    result = read_report(report_dir)
    result.seconds = time.monotonic() - started
    result.selected = len(names)
    if result.passed + result.failed == 0:
        raise LabError(f"the suite ran no spec (exit {proc.returncode}); see {log_path}")
    return result


# What a failed run keeps from each node's journal, by role: the parts a failing spec most
# often points at (the apiserver's webhook and discovery errors, the controllers' and the
# kubelets' view of its pods).
JOURNAL_UNITS = {
    "master": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"),
    "worker": ("kubelet", "containerd", "calico-felix"),
}


def journal_units(node):
    """The units :func:`keep_journals` reads on ``node``, in role order."""
    units = []
    for role in node.roles:
        units += [u for u in JOURNAL_UNITS.get(role, ()) if u not in units]
    return units


def keep_journals(lab, report_dir, since, progress):
    """Write each running node's journal of :func:`journal_units` since ``since`` (epoch
    seconds) to ``report_dir/journals/NODE-UNIT.log``: the hosts' journals live only as long
    as the lab, the report outlives it. Returns the files written."""
    out_dir = Path(report_dir) / "journals"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for node in lab.ordered_nodes():
        if not containers.leader(lab, node):
            continue
        for unit in journal_units(node):
            argv = ["journalctl", "-u", unit, f"--since=@{int(since)}", "-o", "short-precise"]
            said = containers.inside(lab, node, [*argv, "--no-pager"], check=False, timeout=120)
            path = out_dir / f"{node.id}-{unit}.log"
            path.write_text(said.stdout)
            written.append(path)
    progress(f"conformance: kept {len(written)} unit journals in {out_dir}")
    return written


# --- the report ------------------------------------------------------------------------------


def failure_summary(text, limit=400):
    """A failure's text on one line: Gomega's words up to where the suite says which line
    of it failed (``In [It] at: ...``), whitespace collapsed, cut at ``limit``."""
    text = (text or "").split("\nIn [")[0]
    said = " ".join(text.split())
    return said if len(said) <= limit else said[: limit - 3] + "..."


def read_junit(path):
    """Counts and failures from the suite's JUnit report."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"the suite wrote no JUnit report ({path})")
    result = Result()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if not name.startswith("[It]") and "[Conformance]" not in name:
            continue  # suite-level nodes (BeforeSuite, ReportAfterSuite)
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if skipped is not None:
            # Ginkgo reports a spec its filters left out as "skipped"; one that skipped
            # itself while running says why ("skipped - <reason>").
            if skipped.get("message", "skipped") != "skipped":
                result.skipped += 1
        elif failure is not None:
            result.failed += 1
            # Ginkgo leaves the message attribute empty and writes the failure as text.
            reason = failure_summary(failure.get("message") or failure.text)
            result.failures.append((name.removeprefix("[It] "), reason))
        else:
            result.passed += 1
            result.passed_specs.append(name.removeprefix("[It] "))
    return result


def read_report(report_dir):
    """A finished run read back from its report directory: the JUnit report's counts and
    failures, and the specs Ginkgo's JSON report shows passing only on a retry."""
    report_dir = Path(report_dir)
    result = read_junit(report_dir / JUNIT)
    json_report = report_dir / "report.json"
    if json_report.is_file():
        result.flaky = flaky_specs(json.loads(json_report.read_text()))
    result.report_dir = report_dir
    return result


def summary_rows(result):
    rows = [["passed", result.passed], ["failed", result.failed], ["skipped", result.skipped]]
    if result.flaky:
        rows.insert(1, ["of which flaky", len(result.flaky)])
    rows.append(["took", f"{result.seconds / 60:.1f} min"])
    return rows
