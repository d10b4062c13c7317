"""Fixtures shared by the integration modules (the daemons themselves are in tests/conftest)."""

import pytest


@pytest.fixture(scope="module")
def synced(salt_cli, salt_minions):
    """saltutil.sync_all on every minion: the file_roots route for the custom modules."""
    ret = salt_cli.run("saltutil.sync_all", minion_tgt="*")
    assert ret.returncode == 0, ret.stderr
    return ret.data
