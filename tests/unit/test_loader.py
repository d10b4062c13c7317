"""kubesalt_core.loader: how a state module answers Salt's ``__virtual__``."""

import kubesalt_core.loader


def test_a_state_module_loads_under_its_execution_modules_name():
    loaded = {"kubesalt_unit.stale_credentials": None}
    answer = kubesalt_core.loader.state_virtual(loaded, "kubesalt_unit.stale_credentials")
    assert answer == "kubesalt_unit"


def test_without_its_execution_module_it_says_which_is_missing():
    assert kubesalt_core.loader.state_virtual({}, "kubesalt_etcd.members") == (
        False,
        "kubesalt_etcd: the kubesalt_etcd execution module is not loaded",
    )
