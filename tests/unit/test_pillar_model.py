"""Merging with defaults, role lookup and the highstate plan."""

import kubesalt_core.pillar_checks
from kubesalt_core import pillar as model


def test_merge_recurses_into_mappings_and_replaces_everything_else():
    defaults = {"network": {"as_number": 64512, "pod_cidr": "a"}, "roles": ["x", "y"]}
    merged = model.merge(defaults, {"network": {"pod_cidr": "b"}, "roles": ["z"]})
    assert merged == {"network": {"as_number": 64512, "pod_cidr": "b"}, "roles": ["z"]}
    assert defaults["network"]["pod_cidr"] == "a"


def test_merge_keeps_explicit_null_so_validation_can_report_it():
    assert model.merge({"versions": {"etcd": "3.6.5"}}, {"versions": {"etcd": None}}) == {
        "versions": {"etcd": None}
    }


def test_merge_without_pillar_is_the_defaults():
    assert model.merge({"a": 1}, None) is None
    assert model.merge({"a": {"b": 1}}, {}) == {"a": {"b": 1}}


def test_resolve_paths_prefixes_root():
    paths = {"root": "/tmp/t", "config_dir": "/etc/kubesalt"}
    assert model.resolve_paths(paths) == {"root": "/tmp/t", "config_dir": "/tmp/t/etc/kubesalt"}
    assert model.resolve_paths({"root": "/", "pki_dir": "/etc/k"})["pki_dir"] == "/etc/k"


def test_roles_come_in_a_fixed_order_and_only_from_nodes():
    config = {"nodes": {"n1": {"roles": ["worker", "master"], "ip": "198.18.0.2"}}}
    assert model.roles_of(config, "n1") == ["master", "worker"]
    assert model.roles_of(config, "n2") == []
    assert model.roles_of({"nodes": {"n1": {"roles": "master"}}}, "n1") == []
    assert model.roles_of("not a mapping", "n1") == []


def test_node_of_adds_id_and_normalised_roles():
    config = {"nodes": {"n1": {"roles": ["worker"], "ip": "198.18.0.2"}}}
    assert model.node_of(config, "n1") == {"id": "n1", "roles": ["worker"], "ip": "198.18.0.2"}
    assert model.node_of(config, "other") == {}


def _problem(level):
    return kubesalt_core.pillar_checks.Problem("kubesalt:x", "y", level)


def test_plan_for_a_valid_node_is_validation_then_roles():
    plan = model.assigned_states(
        True, [_problem(kubesalt_core.pillar_checks.WARNING)], ["master", "worker"]
    )
    assert plan == ["kubesalt.validate", "kubesalt.master", "kubesalt.worker"]


def test_plan_for_an_invalid_pillar_is_validation_only():
    assert model.assigned_states(
        True, [_problem(kubesalt_core.pillar_checks.ERROR)], ["worker"]
    ) == ["kubesalt.validate"]
    # Even a minion the broken pillar does not list sees the errors.
    assert model.assigned_states(True, [_problem(kubesalt_core.pillar_checks.ERROR)], []) == [
        "kubesalt.validate"
    ]


def test_plan_for_unknown_minions_is_only_the_notice():
    assert model.assigned_states(True, [], []) == ["kubesalt.unassigned"]
    assert model.assigned_states(False, [], []) == ["kubesalt.unassigned"]
