"""Calico's BGP resources and the routers' BIRD config from one pillar: what is built, the
layout checks, Calico's CRD schemas (v3.32.1, from the shared test data) and BIRD's own
parser (`bird -p`)."""

import copy
import subprocess

import jsonschema
import pytest
import yaml

import kubesalt_core.pillar_schema
from kubesalt_core import calico as kc
from kubesalt_lab.pillar import lab_config
from tests.support.shared_data import calico_crds_or_skip


@pytest.fixture
def config():
    return lab_config()


def _kinds(objects):
    return [(o["kind"], o["metadata"]["name"]) for o in objects]


def test_resources_for_the_lab(config):
    objects = kc.resources(config)
    assert _kinds(objects) == [
        ("BGPConfiguration", "default"),
        ("BGPPeer", "router-router-1"),
        ("IPPool", "default-ipv4"),
        ("IPPool", "load-balancer"),
    ]
    bgp = objects[0]["spec"]
    # The AS is always explicit: Calico's default would turn iBGP into eBGP on an AS change.
    assert bgp == {
        "asNumber": 64512,
        "nodeToNodeMeshEnabled": False,
        "logSeverityScreen": "Info",
        "serviceLoadBalancerIPs": [{"cidr": "198.18.32.0/24"}],
    }
    assert objects[1]["spec"] == {
        "peerIP": "198.18.0.31",
        "asNumber": 64512,
        "nodeSelector": "all()",
    }
    pool = objects[2]["spec"]
    assert (pool["ipipMode"], pool["vxlanMode"], pool["cidr"]) == (
        "Never",
        "Never",
        "198.19.0.0/16",
    )
    # No Kubernetes Node: applying one would create a node no kubelet runs.
    assert [o["kind"] for o in objects] == ["BGPConfiguration", "BGPPeer", "IPPool", "IPPool"]


def test_a_load_balancer_pool_is_calicos_kind_and_announced_only_when_given(config):
    lb = kc.ip_pool_objects(config)[-1]["spec"]
    # What Calico's validation asks of a LoadBalancer pool (applied past it, as CRD objects).
    assert lb == {
        "cidr": "198.18.32.0/24",
        "blockSize": 26,
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": False,
        "nodeSelector": "all()",
        "allowedUses": ["LoadBalancer"],
        "assignmentMode": "Automatic",
    }
    assert "if net ~ [ 198.18.32.0/24{24,32} ] then accept;" in kc.bird_config(config, "router-1")
    # A pool smaller than a block gets blocks its own size.
    config["network"]["load_balancer_cidr"] = "198.18.32.0/28"
    assert kc.ip_pool_objects(config)[-1]["spec"]["blockSize"] == 28
    config["network"]["load_balancer_cidr"] = None
    assert [p["metadata"]["name"] for p in kc.ip_pool_objects(config)] == ["default-ipv4"]
    assert "serviceLoadBalancerIPs" not in kc.bgp_configuration(config)["spec"]
    assert "198.18.32.0" not in kc.bird_config(config, "router-1")


def test_service_ips_are_advertised_only_when_asked(config):
    assert "serviceClusterIPs" not in kc.bgp_configuration(config)["spec"]
    config["network"]["bgp"] = {"advertise_service_cluster_ips": True}
    assert kc.bgp_configuration(config)["spec"]["serviceClusterIPs"] == [{"cidr": "198.18.16.0/20"}]


def _problems(config):
    return kubesalt_core.pillar_schema.validate(config)


def test_a_router_in_another_as_needs_ebgp_on_purpose(config):
    config["nodes"]["router-1"]["as_number"] = 64513
    (problem,) = _problems(config)
    assert problem.key == "kubesalt:nodes:router-1:as_number"
    assert "is not the cluster AS 64512" in problem.message and "ebgp" in problem.message
    config["network"]["bgp"] = {**config["network"]["bgp"], "ebgp": True}
    assert _problems(config) == []


def test_duplicate_router_ids(config):
    config["nodes"]["router-2"] = {
        "roles": ["router"],
        "ip": "198.18.0.32",
        "router_id": "198.18.0.31",
    }
    (problem,) = _problems(config)
    assert (problem.key, problem.message) == (
        "kubesalt:nodes:router-2:router_id",
        "198.18.0.31 is already the router id of router-1",
    )


def test_a_router_that_shares_no_subnet_with_the_nodes(config):
    config["nodes"]["router-3"] = {"roles": ["router"], "ip": "198.18.1.33"}
    (problem,) = _problems(config)
    assert problem.key == "kubesalt:nodes:router-3:ip"
    assert "outside node_cidr 198.18.0.0/24" in problem.message
    # The BGP check says the same on its own (the pillar check stops first above).
    ((key, message),) = kc.problems(config)
    assert key == "kubesalt:nodes:router-3:ip" and "shares no subnet" in message


def test_ip_pools_must_sit_in_the_pod_range(config):
    config["network"]["ip_pools"] = [{"name": "outside", "cidr": "198.20.0.0/16"}]
    (problem,) = _problems(config)
    assert problem.key == "kubesalt:network:ip_pools:0:cidr"
    assert "is not inside network:pod_cidr 198.19.0.0/16" in problem.message


# --- Calico's CRD schemas ------------------------------------------------------------------------


def _python_patterns(schema):
    """Go's regexp allows ``^(?i)``; Python wants inline flags first."""
    if isinstance(schema, dict):
        out = {k: _python_patterns(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            out["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        return out
    if isinstance(schema, list):
        return [_python_patterns(v) for v in schema]
    return schema


def _schemas():
    folder = calico_crds_or_skip()
    schemas = {}
    for path in folder.glob("crd.projectcalico.org_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        (version,) = crd["spec"]["versions"]
        schema = _python_patterns(version["schema"]["openAPIV3Schema"])
        schemas[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    return schemas


def _validate(obj, schemas):
    schemas[obj["kind"]].validate(obj)


def test_resources_validate_against_calico_crd_schemas(config):
    schemas = _schemas()
    config["network"]["bgp"] = {"advertise_service_cluster_ips": True}
    checked = 0
    for obj in kc.resources(config):
        if obj["apiVersion"] == kc.CALICO_API:
            _validate(obj, schemas)
            checked += 1
    assert checked == 4


def test_the_schema_check_catches_a_bad_resource(config):
    schemas = _schemas()
    bad = copy.deepcopy(kc.ip_pool_objects(config)[0])
    bad["spec"]["ipipMode"] = "Sometimes"
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad, schemas)


# --- the routers' BIRD config ---------------------------------------------------------------------


def _bird_parse(tmp_path, text):
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    return subprocess.run(
        ["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("advertise", [False, True])
def test_bird_config_parses_and_reflects_to_every_worker(config, tmp_path, advertise):
    config["network"]["bgp"] = {"advertise_service_cluster_ips": advertise, "fast_timers": True}
    text = kc.bird_config(config, "router-1")
    proc = _bird_parse(tmp_path, text)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "rr client;" in text and "rr cluster id 198.18.0.31;" in text
    assert "graceful restart on;" in text
    assert "neighbor 198.18.0.21 as 64512;" in text and "neighbor 198.18.0.22 as 64512;" in text
    assert text.count("if net = 0.0.0.0/0 then reject;") == 2
    assert ("198.18.16.0/20{20,32}" in text) == advertise


def test_bird_parser_would_catch_a_broken_config(config, tmp_path):
    text = kc.bird_config(config, "router-1").replace("rr client;", "rr clint;")
    proc = _bird_parse(tmp_path, text)
    assert proc.returncode != 0 and "syntax error" in proc.stderr.lower()
