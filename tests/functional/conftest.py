"""A minion's loader in-process (no daemons): file_roots = this repo's states, an empty
pillar tree (each test passes its whole pillar inline), modules found through the
installed package's salt.loader entry point."""

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import STATES_DIR


@pytest.fixture(scope="module")
def minion_opts(salt_factories, tmp_path_factory):
    empty_pillar = tmp_path_factory.mktemp("empty-pillar")
    overrides = {
        "file_client": "local",
        "file_roots": {"base": [str(STATES_DIR)]},
        "pillar_roots": {"base": [str(empty_pillar)]},
        # No daemon to sync into or to tell about refreshed modules (each try waits 1 s on
        # an event bus nobody listens to); the modules come from the installed package.
        "autoload_dynamic_modules": False,
    }
    # The CA host: without a salt-master, only it can get certificates (it signs its own).
    factory = salt_factories.salt_minion_daemon("master-1", overrides=overrides)
    return factory.config.copy()


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def _reset_loaders(loaders):
    yield
    loaders.reset_state()
