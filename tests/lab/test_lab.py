"""Bring the lab up, converge it and check every host (`test_lab_down.py` takes it down)."""

import ipaddress
import subprocess

import yaml

import kubesalt_core.components
import kubesalt_core.pki
from kubesalt_lab import containers, lifecycle, master, overview, report
from kubesalt_lab.pillar import lab_config
from tests.lab.conftest import LAB_CLI, quiet, second_run

POD_POOL = ipaddress.ip_network("198.19.0.0/16")  # network:pod_cidr of the lab's pillar


def test_every_host_reaches_systemd_running(lab_up):
    lab, _ = lab_up
    assert {n.id: containers.system_state(lab, n) for n in lab.nodes} == {
        n.id: "running" for n in lab.nodes
    }


def test_every_minion_answers_test_ping(lab_up):
    lab, _ = lab_up
    assert master.ping(lab, lab.nodes) == {n.id: True for n in lab.nodes}


def test_hosts_have_their_pillar_address_and_no_way_out(lab_up):
    lab, _ = lab_up
    router = next(n for n in lab.ordered_nodes() if "router" in n.roles)
    subnet = f"198.18.0.0/{lab.prefixlen} dev eth0 proto kernel scope link src"
    for node in lab.nodes:
        addrs = containers.inside(lab, node, ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
        assert f"inet {node.ip}/{lab.prefixlen}" in addrs
        # One line per route (-o), a route with a path over each of several nodes included.
        routes = containers.inside(lab, node, ["ip", "-o", "-4", "route"]).stdout.splitlines()
        routes = [line.strip() for line in routes if "proto bird" not in line]
        # Felix's route to each local pod: a pool address on the pod's own interface.
        pods = [r for r in routes if " dev cali" in r]
        assert all(ipaddress.ip_address(r.split()[0]) in POD_POOL for r in pods), pods
        routes = [r for r in routes if r not in pods]
        # The router is every other node's gateway, as a datacenter's router would be ...
        gateway = [] if node is router else [f"default via {router.ip} dev eth0"]
        assert routes == [*gateway, f"{subnet} {node.ip}"], node.id
    # ... and it has no way out itself: a lookup (no packet sent) of a documentation
    # address finds no route.
    lookup = containers.inside(lab, router, ["ip", "route", "get", "192.0.2.1"], check=False)
    assert lookup.returncode != 0 and "unreachable" in lookup.stderr, lookup


def test_a_highstate_of_every_node_converges(first_apply, lab_up):
    # On fresh hosts when this module runs alone; `test_lab_units.py` checks the first run.
    lab, _ = lab_up
    assert set(first_apply) == {n.id for n in lab.nodes}
    for node_id, summary in first_apply.items():
        assert summary["failed"] == 0 and summary["errors"] == [], node_id
        assert summary["ok"] + summary["changed"] > 0, node_id


def test_no_request_to_the_master_stalled_while_every_node_ran_at_once(first_apply, lab_up):
    """A node's certificate state asks the CA host through the master (peer publish) when a
    certificate is due (first runs: every node), and the master answers each from a worker
    that waits for the reply; a request handed to a waiting worker stalls until Salt's 30 s
    timeout (1 run of every node at once in 4 took 39-72 s instead of 8-10 s). Runs with
    nothing due read the mine instead, and conf/master.d sets worker_threads; the master's
    log shows no request that timed out. (The lab's own salt commands log to cli.log: its
    quick pings give up after 3 s by design while the master admits every minion.)"""
    lab, _ = lab_up
    log = (lab.master_dir / "master.log").read_text(errors="replace")
    assert "Request timed out while waiting for a response" not in log


def test_highstate_wrote_each_node_identity_from_pillar(first_apply, lab_up):
    lab, _ = lab_up
    for node in lab.nodes:
        text = containers.inside(lab, node, ["cat", "/etc/kubesalt/node.yaml"]).stdout
        identity = yaml.safe_load(text)
        assert (identity["node"], identity["ip"], tuple(identity["roles"])) == (
            node.id,
            node.ip,
            node.roles,
        )


def _files_with_modes(lab, node, directory):
    """``{name: mode}`` of the regular files in ``directory`` on ``node`` ({} when absent)."""
    listing = containers.inside(
        lab,
        node,
        ["find", directory, "-maxdepth", "1", "-type", "f", "-printf", "%f %m\\n"],
        check=False,
    ).stdout
    return dict(line.split() for line in listing.splitlines() if not line.startswith("."))


def test_every_node_holds_exactly_its_catalogue_certificates(first_apply, lab_up, tmp_path):
    lab, _ = lab_up
    pillar = lab_config()
    for node in lab.nodes:
        identities = kubesalt_core.pki.node_identities(pillar, node.id, node.roles)
        files = _files_with_modes(lab, node, "/etc/kubernetes/pki")
        wanted = {f"{i.name}.crt" for i in identities} | {f"{i.name}.key" for i in identities}
        wanted |= {f"{ca}.crt" for ca in kubesalt_core.pki.trusted_cas(identities)}
        if "master" in node.roles:
            wanted |= {"service-account.key", "service-accounts.pub"}
        assert set(files) == wanted, node.id
        assert {n: m for n, m in files.items() if n.endswith(".key")} == {
            n: "600" for n in wanted if n.endswith(".key")
        }, node.id
        # Every certificate chains to the CA the node trusts (checked by the machine's openssl).
        for identity in identities:
            pems = []
            for name in (identity.ca, identity.name):
                pem = tmp_path / f"{node.id}-{name}.crt"
                pem.write_text(_cat(lab, node, f"/etc/kubernetes/pki/{name}.crt"))
                pems.append(str(pem))
            verify = subprocess.run(
                ["openssl", "verify", "-CAfile", *pems], capture_output=True, text=True
            )
            assert verify.returncode == 0, (node.id, identity.name, verify.stderr)


def test_ca_keys_exist_on_the_ca_host_alone(first_apply, lab_up):
    lab, _ = lab_up
    cas = {f"{ca}.{ext}" for ca in kubesalt_core.pki.CAS for ext in ("crt", "key")}
    for node in lab.nodes:
        files = _files_with_modes(lab, node, "/etc/kubesalt/ca")
        if node.id == "master-1":
            assert cas <= set(files)
            assert {n: files[n] for n in cas if n.endswith(".key")} == dict.fromkeys(
                (n for n in cas if n.endswith(".key")), "600"
            )
        else:
            assert files == {}, node.id
    # No file on any other host holds a CA private key (searched by content).
    ca_host = next(n for n in lab.nodes if n.id == "master-1")
    for ca in kubesalt_core.pki.CAS:
        body = _cat(lab, ca_host, f"/etc/kubesalt/ca/{ca}.key").splitlines()[1]
        for node in lab.nodes:
            found = containers.inside(
                lab, node, ["grep", "-rlF", "--", body, "/etc", "/var", "/root"], check=False
            ).stdout.split()
            expected = [f"/etc/kubesalt/ca/{ca}.key"] if node is ca_host else []
            assert found == expected, (node.id, ca, found)
        # Nor the salt-master's job cache (every job return and event passes there).
        grep = subprocess.run(
            ["grep", "-rlF", "--", body, str(lab.master_dir)], capture_output=True, text=True
        )
        assert grep.stdout == "", (ca, grep.stdout)


def _cat(lab, node, path):
    return containers.inside(lab, node, ["cat", path]).stdout


def test_masters_trust_each_others_service_account_keys(first_apply, lab_up):
    lab, _ = lab_up
    masters = [n for n in lab.nodes if "master" in n.roles]
    bundles = {
        n.id: containers.inside(lab, n, ["cat", "/etc/kubernetes/pki/service-accounts.pub"]).stdout
        for n in masters
    }
    assert len(set(bundles.values())) == 1
    assert next(iter(bundles.values())).count("BEGIN PUBLIC KEY") == len(masters)


def test_second_highstate_changes_nothing(first_apply, lab_up):
    lab, _ = lab_up
    again = second_run(lab, first_apply)
    for node_id, summary in again.items():
        assert (summary["changed"], summary["failed"], summary["errors"]) == (0, 0, []), node_id
        assert summary["ok"] == first_apply[node_id]["ok"] + first_apply[node_id]["changed"]


def test_status_shows_every_unit_running_from_the_lab_build(first_apply, lab_up):
    lab, _ = lab_up
    shown = overview.status(lab)
    assert [row[3:] for row in shown["hosts"]] == [["running", "answers"]] * len(lab.nodes)
    states = {(node, unit): state for node, unit, state in shown["units"]}
    # Built by the lab (or Debian's, for BIRD): every unit has its artifact and runs.
    for node in lab.ordered_nodes():
        for unit in kubesalt_core.components.managed_units(node.roles):
            assert states[(node.id, unit)].startswith("active"), (node.id, unit)
    assert states[("worker-2", "calico-node.service")] == "active (exited), enabled"
    assert report.NOT_IN_LAB not in overview.status_tables(shown)


def test_up_twice_duplicates_nothing(lab_up):
    lab, _ = lab_up
    before = {n.id: containers.nspawn_pid(lab, n) for n in lab.nodes}
    master_before = master.master_pid(lab)
    result = lifecycle.up(lab, quiet)
    assert result["built_rootfs"] is False and result["booted"] == []
    assert {n.id: containers.nspawn_pid(lab, n) for n in lab.nodes} == before
    assert master.master_pid(lab) == master_before
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert sorted(line.split()[0] for line in netns.splitlines() if "ksl-" in line) == sorted(
        n.netns for n in lab.nodes
    )


def test_cli_shell_runs_a_command_inside_a_node(lab_up):
    proc = subprocess.run(
        [*LAB_CLI, "shell", "router-1", "hostname"], capture_output=True, text=True, timeout=30
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "router-1")


def test_cli_refuses_an_unknown_node(lab_up):
    proc = subprocess.run(
        [*LAB_CLI, "shell", "worker-9", "true"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "unknown node 'worker-9'" in proc.stderr
