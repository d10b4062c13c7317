"""The loader names before 0.2 still answer for one release (README, "Module names"): each
old name reaches exactly the functions of its new module(s), and calls them."""

import pytest
from salt.exceptions import SaltInvocationError

RENAMED = {
    "k8s_pki": ("kubesalt_pki", "kubesalt_ca"),
    "k8s_etcd": ("kubesalt_etcd",),
    "k8s_unit": ("kubesalt_unit",),
    "k8s_artifact": ("kubesalt_artifact",),
    "k8s_objects": ("kubesalt_manifest",),
    "k8s_heal": ("kubesalt_heal",),
    "calico_bgp": ("kubesalt_calico",),
}
STATES_RENAMED = {old: new for old, new in RENAMED.items() if old not in ("k8s_heal",)}


def _as(old, functions):
    return sorted(f"{old}.{name.split('.', 1)[1]}" for name in functions)


@pytest.mark.parametrize("old", RENAMED)
def test_an_old_module_name_lists_the_new_modules_functions(loaders, old):
    listed = loaders.modules.sys.list_functions
    new_functions = [f for new in RENAMED[old] for f in listed(new)]
    assert new_functions, RENAMED[old]
    assert listed(old) == _as(old, new_functions)


@pytest.mark.parametrize("old", STATES_RENAMED)
def test_an_old_state_module_name_lists_the_new_states(loaders, old):
    listed = loaders.modules.sys.list_state_functions
    new_functions = [f for new in STATES_RENAMED[old] for f in listed(new)]
    assert new_functions, STATES_RENAMED[old]
    assert listed(old) == _as(old, new_functions)


def test_an_old_name_calls_the_same_function(loaders):
    assert loaders.modules["k8s_artifact.catalogue"]() == (
        loaders.modules["kubesalt_artifact.catalogue"]()
    )
    # k8s_pki's CA functions now live in kubesalt_ca; the old name still reaches them.
    with pytest.raises(SaltInvocationError, match="Invalid value 'nope' for ca"):
        loaders.modules["k8s_pki.rotate_ca"]("nope")
