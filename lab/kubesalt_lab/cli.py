"""kubesalt-lab: a real multi-host kubesalt cluster on this machine.

kubesalt-lab build     build every component from its Go module into release archives
kubesalt-lab prepare   build, and make the rootfs and the conformance suite ahead of time
kubesalt-lab up        build, boot the hosts, start the salt-master, wait for minions
kubesalt-lab apply     highstate masters, then workers, then routers; print a table
kubesalt-lab status    hosts, minions, and the units each node's roles manage
kubesalt-lab shell N   a shell (or a command) inside node N
kubesalt-lab stop N    power node N off as a pulled plug would (its disk is kept)
kubesalt-lab start N   boot a stopped node N again from its disk
kubesalt-lab pillar K=V  replace pillar values for every node (a copy; the repo is untouched)
kubesalt-lab kubeconfig  print an admin kubeconfig usable from this machine
kubesalt-lab conformance run Kubernetes' conformance suite against the lab
kubesalt-lab kube-bench  run the CIS benchmark (kube-bench) on a master and a worker
kubesalt-lab down      stop and remove everything the lab made
"""

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

import kubesalt_core.pillar
from kubesalt_lab import (
    config,
    containers,
    converge,
    kube_bench,
    lifecycle,
    master,
    overview,
    recipes,
    report,
)
from kubesalt_lab import conformance as conformance_lib
from kubesalt_lab.config import LabError


def _progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _parser():
    parser = argparse.ArgumentParser(
        prog="kubesalt-lab",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    parser.add_argument(
        "--cache-dir", help=f"rootfs cache (default: $KUBESALT_LAB_CACHE or {config.DEFAULT_CACHE})"
    )
    parser.add_argument(
        "--run-dir",
        help="runtime state: master config, keys, logs "
        f"(default: $KUBESALT_LAB_RUN or {config.DEFAULT_RUN})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = sub.add_parser(
        "build",
        help="build every component from its Go module (cached)",
        description="Build each component the lab's pillar pins (versions:) from its own Go "
        "module with the pinned Go toolchain, and pack it as its upstream release is laid "
        "out, with its sha256, under <cache>/artifacts. A finished build is reused; the "
        "first takes tens of minutes on 2 cores. A version the module proxy does not have "
        "fails here, naming what exists.",
    )
    build.add_argument(
        "components",
        nargs="*",
        metavar="COMPONENT",
        help=f"only these ({', '.join(r.name for r in recipes.RECIPES)}); default: all",
    )
    sub.add_parser(
        "prepare",
        help="build, and make the hosts' rootfs and the conformance suite, ahead of time",
        description="Everything `up` and `conformance` take from the cache, made now: "
        "every component built (as `build`), the hosts' Debian rootfs, NGINX's Ingress "
        "Controller from its source archive (when it is here) and its image's Debian layer, "
        "e2e.test and ginkgo, the programs of the suite's images and their Debian base "
        "layer. Nothing starts. From nothing cached this is the long part of a first "
        "`make lab` (tens of minutes on 2 cores); `make test` runs it before its tests.",
    )
    sub.add_parser(
        "up",
        help="build the rootfs once, boot every node, start salt, wait for every minion",
        description="Bring the lab up. Safe to repeat: what runs already is kept.",
    )
    apply = sub.add_parser(
        "apply",
        help="highstate in order: masters, workers, routers",
        description="Apply the highstate node by node (masters, then workers, "
        "then routers) and print node, roles, states ok/changed/failed, duration. "
        "Exits 1 when a state failed.",
    )
    apply.add_argument(
        "--role",
        action="append",
        choices=kubesalt_core.pillar.ROLES,
        dest="roles",
        help="only the nodes with this role (repeatable); default: every node",
    )
    apply.add_argument(
        "--together",
        action="store_true",
        help="every node in one run instead of masters, workers, routers in turn (for a "
        "cluster that converged already: the order matters while it is being built)",
    )
    sub.add_parser(
        "status",
        help="hosts, minions and managed units",
        description="Show each node's systemd state, whether its minion answers, "
        "and the state of every unit its roles manage.",
    )
    shell = sub.add_parser(
        "shell",
        help="a shell or command inside a node",
        description="Open a login shell inside NODE, or run COMMAND there.",
    )
    shell.add_argument("node", metavar="NODE")
    shell.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    stop = sub.add_parser(
        "stop",
        help="power a node off as a pulled plug would",
        description="Kill every process of NODE at once (no shutdown: its services flush "
        "nothing), take its network link down so that its peers hear nothing from it, and "
        "drop its routes, as a host that lost power. Its disk is kept: `kubesalt-lab start "
        "NODE` boots it again. `status` shows it as stopped.",
    )
    stop.add_argument("node", metavar="NODE")
    start = sub.add_parser(
        "start",
        help="boot a stopped node again from its disk",
        description="Boot NODE from its disk as it was when it stopped and wait for its "
        "minion. Nothing else is done for it: what runs there starts as its own systemd "
        "starts it.",
    )
    start.add_argument("node", metavar="NODE")
    pillar = sub.add_parser(
        "pillar",
        help="replace pillar values for every node",
        description="Replace values of the repo's kubesalt pillar on every node, in a copy "
        "the lab owns, and refresh the minions' pillar; the next apply uses them. Each "
        "setting replaces the value at that path (a mapping is not merged). Example: "
        "kubesalt-lab pillar versions:etcd=3.5.1 "
        "'artifacts:etcd={source: url, url: http://198.18.0.1:8000/etcd.tar.gz, sha256: ...}'",
    )
    pillar.add_argument(
        "settings", nargs="*", metavar="PATH=VALUE", help="colon path under kubesalt; YAML value"
    )
    pillar.add_argument("--reset", action="store_true", help="back to the repo's pillar")
    sub.add_parser(
        "kubeconfig",
        help="print an admin kubeconfig usable from this machine",
        description="Print the first master's admin kubeconfig with its CA, certificate and "
        "key embedded, so kubectl and other tools on this machine reach the lab's "
        "apiserver: kubesalt-lab kubeconfig > lab.conf; kubectl --kubeconfig lab.conf get "
        "nodes. It holds the cluster admin's private key: keep it 0600.",
    )
    conformance = sub.add_parser(
        "conformance",
        help="run Kubernetes' conformance suite against the lab",
        description="Build e2e.test and ginkgo from the cluster's Kubernetes version "
        "(cached), make the images the suite runs and push them to the lab's registry, then "
        "run the [Conformance] specs (those whose names match --focus) against the running "
        "lab. Prints a line per finished spec and a summary; the JUnit report, Ginkgo's "
        "JSON report and the suite's log stay in the report directory. Exits 0 when every "
        "spec passed, 1 when one failed, 2 when nothing could run (no lab, a focus that "
        "selects no spec).",
    )
    conformance.add_argument(
        "--focus",
        metavar="REGEX",
        help="only the conformance specs whose full name matches (Ginkgo's --focus), e.g. "
        r"'\[sig-network\]'; default: all of them",
    )
    conformance.add_argument(
        "--skip",
        metavar="REGEX",
        default=conformance_lib.DEFAULT_SKIP,
        help="leave out the specs whose names match, e.g. '\\[Disruptive\\]' (default: none)",
    )
    conformance.add_argument(
        "--procs",
        type=int,
        default=conformance_lib.DEFAULT_PROCS,
        help="parallel Ginkgo processes ([Serial] specs run alone at the end; default: "
        f"{conformance_lib.DEFAULT_PROCS})",
    )
    conformance.add_argument(
        "--flake-attempts",
        type=int,
        default=1,
        metavar="N",
        help="run a failed spec up to N times in all (Ginkgo's --flake-attempts); a spec "
        "that passes on a retry counts as passed and is listed as flaky with its first "
        "failure (default: 1, no retry, as a certification run)",
    )
    conformance.add_argument(
        "--report-dir",
        metavar="DIR",
        help="where the reports go (default: <cache>/conformance/reports/<UTC time>)",
    )
    sub.add_parser(
        "kube-bench",
        help="run the CIS Kubernetes benchmark (kube-bench) on a master and a worker",
        description="Build kube-bench from its Go module (cached), put it with its checks "
        "where every host sees it, and run it with --benchmark cis-1.12 inside the first "
        "master (targets master, etcd, controlplane, policies) and the first worker "
        "(node). Prints the totals per node kind and every failed check. Exits 2 without a "
        "lab.",
    )
    sub.add_parser(
        "down",
        help="stop and remove everything the lab made",
        description="Stop every host and the salt-master, remove namespaces, "
        "veths, the bridge and the runtime directory. Also cleans up after an "
        "`up` that died half-way. The rootfs cache is kept.",
    )
    return parser


def parse_settings(items):
    """``["versions:etcd=3.5.1", ...]`` → ``{"versions:etcd": "3.5.1"}`` (values are YAML)."""
    settings = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or not path or any(not part for part in path.split(":")):
            raise LabError(f"{item!r}: expected PATH=VALUE, e.g. versions:etcd=3.5.1")
        try:
            settings[path] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise LabError(f"{item!r}: the value is not YAML: {err}") from None
    return settings


def _kube_bench(lab):
    if not all(containers.nspawn_pid(lab, node) for node in lab.nodes):
        raise LabError("the lab is not up (kubesalt-lab up, then apply)")
    reports = kube_bench.run_all(lab, _progress)
    rows = [
        [kind, r.node, r.passed, r.failed, r.warned, r.info]
        for kind, found in reports.items()
        for r in found
    ]
    print(report.table(["kind", "node", "pass", "fail", "warn", "info"], rows))
    unknown = 0
    for kind, found in reports.items():
        for r in found:
            for number, text in r.checks.get("FAIL", []):
                why = kube_bench.KNOWN_FAILS[kind].get(number)
                unknown += why is None
                print(f"{r.node} FAIL {number} {text} ({why or 'NOT ON THE KNOWN LIST'})")
    return 1 if unknown else 0


def _conformance(lab, args):
    if args.procs < 1:
        raise LabError(f"--procs {args.procs}: expected a number of processes, 1 or more")
    if args.flake_attempts < 1:
        raise LabError(f"--flake-attempts {args.flake_attempts}: expected 1 or more")
    conformance_lib.check_focus(args.focus, args.skip)
    # In this order, so that no lab, a lab that does not answer or a focus that selects
    # nothing stops the run before anything outside the lab's build cache changes.
    kubeconfig = conformance_lib.write_kubeconfig(lab)
    tools = conformance_lib.build_tools(lab, _progress, master.lab_pillar(lab).versions())
    conformance_lib.check_api(tools, kubeconfig)
    report_dir = Path(args.report_dir or conformance_lib.default_report_dir(lab))
    names = conformance_lib.selected_specs(tools, kubeconfig, args.focus, args.skip)
    conformance_lib.publish_images(lab, tools, _progress)
    started = time.time()
    result = conformance_lib.run(
        tools,
        kubeconfig,
        report_dir,
        _progress,
        names,
        args.focus,
        args.procs,
        args.skip,
        flake_attempts=args.flake_attempts,
    )
    if result.failed or result.flaky:
        conformance_lib.keep_journals(lab, report_dir, started, _progress)
    print(report.table(["result", "specs"], conformance_lib.summary_rows(result)))
    for name, reason in result.flaky:
        print(f"FLAKY  {name}\n       first attempt: {reason}")
    for name, reason in result.failures:
        print(f"FAILED {name}\n       {reason}")
    print(f"reports: {result.report_dir}")
    return 0 if result.failed == 0 else 1


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        lab = config.load(cache_dir=args.cache_dir, run_dir=args.run_dir)
        if args.command == "build":
            unknown = [c for c in args.components if c not in recipes.BY_NAME]
            if unknown:
                known = ", ".join(recipes.BY_NAME)
                raise LabError(f"unknown component {', '.join(unknown)}; known: {known}")
            _results, rows = lifecycle.build_components(lab, _progress, args.components or None)
            print(report.table(["component", "version", "took", "files"], rows))
        elif args.command == "prepare":
            rows = lifecycle.prepare(lab, _progress)
            print(report.table(["component", "version", "took", "files"], rows))
        elif args.command == "up":
            lifecycle.up(lab, _progress)
        elif args.command == "apply":
            results = converge.apply(lab, _progress, args.roles, together=args.together)
            print(converge.apply_table(lab, results))
            if any(r["failed"] or r["errors"] for r in results.values()):
                return 1
        elif args.command == "status":
            print(overview.status_tables(overview.status(lab)))
        elif args.command == "shell":
            node = lab.node(args.node)
            if not containers.leader(lab, node):
                raise LabError(f"{node.id} is not running (kubesalt-lab up)")
            argv = containers.shell_argv(lab, node, args.cmd)
            os.execvp(argv[0], argv)
        elif args.command == "stop":
            lifecycle.stop_host(lab, args.node, _progress)
        elif args.command == "start":
            lifecycle.start_host(lab, args.node, _progress)
        elif args.command == "pillar":
            if bool(args.settings) == args.reset:
                raise LabError("give PATH=VALUE settings, or --reset (not both)")
            refreshed = lifecycle.set_pillar(lab, parse_settings(args.settings), _progress)
            stale = sorted(node for node, ok in refreshed.items() if not ok)
            if stale:
                raise LabError(f"pillar written, but not refreshed on: {', '.join(stale)}")
            _progress("pillar refreshed on every node; `kubesalt-lab apply` uses it")
        elif args.command == "kubeconfig":
            sys.stdout.write(conformance_lib.kubeconfig(lab))
        elif args.command == "conformance":
            return _conformance(lab, args)
        elif args.command == "kube-bench":
            return _kube_bench(lab)
        elif args.command == "down":
            lifecycle.down(lab, _progress)
    except LabError as err:
        print(f"kubesalt-lab: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "kubesalt-lab: interrupted; `kubesalt-lab down` removes what was made", file=sys.stderr
        )
        return 130
    return 0
