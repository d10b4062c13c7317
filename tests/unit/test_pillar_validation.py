"""The pillar model's validation, case by case (the bad-pillar corpus) and as a whole."""

import copy
import ipaddress

import pytest
import yaml

import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
from kubesalt_lab.config import REPO
from kubesalt_lab.pillar import formula_defaults, lab_pillar
from tests.support.bad_pillars import CASES


def _problems(pillar):
    return kubesalt_core.pillar_schema.validate(
        kubesalt_core.pillar.merge(formula_defaults(), pillar)
    )


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.expected for c in CASES}) == len(CASES)


def test_lab_pillar_is_valid():
    assert _problems(lab_pillar()) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_pillar_reports_its_problem(case):
    problems = _problems(case.pillar())
    found = {str(p): p.level for p in problems}
    assert case.expected in found, "\n".join(found)
    assert found[case.expected] == case.level
    # An error case must stop the run; a warning case must not.
    assert bool(kubesalt_core.pillar_checks.errors(problems)) == (case.level == "error")


def test_every_problem_is_reported_at_once():
    pillar = lab_pillar()
    pillar["network"]["as_number"] = 0
    pillar["nodes"]["worker-1"]["roles"] = ["wrker"]
    pillar["versions"] = {"etcd": "latest"}
    keys = {p.key for p in _problems(pillar)}
    assert {
        "kubesalt:network:as_number",
        "kubesalt:nodes:worker-1:roles:0",
        "kubesalt:versions:etcd",
    } <= keys


def test_problem_keys_resolve_with_pillar_get_notation():
    """Each reported key is a path into the pillar as `pillar.get` spells it."""
    pillar = {"kubesalt": lab_pillar()}
    pillar["kubesalt"]["nodes"]["worker-1"]["roles"] = ["master", "wrker"]
    (problem,) = _problems(pillar["kubesalt"])
    node = pillar
    for part in problem.key.split(":"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert node == "wrker"


def test_pillar_example_is_valid_and_documents_every_key():
    example = yaml.safe_load((REPO / "pillar" / "pillar.example").read_text())["kubesalt"]
    assert _problems(example) == []

    def keys(schema_value):
        return set(schema_value) if isinstance(schema_value, dict) else set()

    defaults = formula_defaults()
    assert set(example) == set(kubesalt_core.pillar_schema.SCHEMA)
    for section in ("cluster", "network", "versions", "pki", "paths"):
        assert set(example[section]) == keys(defaults[section]), section
    documented = {k for n in example["nodes"].values() for k in n}
    assert documented == {"roles", "ip", "as_number", "router_id"}
    assert {a["source"] for a in example["artifacts"].values()} == set(
        kubesalt_core.pillar.ARTIFACT_SOURCES
    )


def test_defaults_cover_every_component_and_path():
    defaults = formula_defaults()
    assert set(defaults["versions"]) == set(kubesalt_core.pillar.COMPONENTS)
    assert set(defaults["paths"]) == {"root", *kubesalt_core.pillar.PATH_KEYS}
    # The defaults alone are a valid network layout.
    net = defaults["network"]
    assert ipaddress.ip_address(net["cluster_dns_ip"]) in ipaddress.ip_network(net["service_cidr"])


def test_lab_addresses_stay_in_the_benchmarking_range():
    lab = lab_pillar()
    bench = ipaddress.ip_network("198.18.0.0/15")
    for name in ("node_cidr", "pod_cidr", "service_cidr"):
        assert ipaddress.ip_network(lab["network"][name]).subnet_of(bench)
    for node in lab["nodes"].values():
        assert ipaddress.ip_address(node["ip"]) in bench
    roles = [r for n in lab["nodes"].values() for r in n["roles"]]
    assert (roles.count("master"), roles.count("worker"), roles.count("router")) == (3, 2, 1)


def test_validation_does_not_modify_its_input():
    pillar = lab_pillar()
    before = copy.deepcopy(pillar)
    _problems(pillar)
    assert pillar == before
