"""A config file a component's own program rejects never replaces the one in place: Salt's
file.managed, through its loader in-process, with the check each unit renders for its
config (``Rendered.checks``), run by the machine's real BIRD (the built tier runs containerd's)."""

import shutil

import kubesalt_core.pillar
import kubesalt_core.unit
from kubesalt_lab.pillar import lab_config

BIRD = shutil.which("bird") or "/usr/sbin/bird"


def _config():
    config = lab_config()
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    return config


def _check(node_id, unit, executable):
    """The one check ``unit`` renders, with ``executable`` in place of the node's."""
    rendered = kubesalt_core.unit.render(_config(), node_id, unit)
    ((path, command),) = rendered.checks.items()
    return path, command.replace(rendered.executable, executable, 1), rendered.files[path][0]


def test_the_routers_bird_config_is_checked_by_bird_and_a_rejected_one_stays_out(loaders, tmp_path):
    path, command, good = _check("router-1", "bird", BIRD)
    assert path.endswith("/etc/bird/bird.conf") and command == f"{BIRD} -p -c"
    target = tmp_path / "bird.conf"
    ret = loaders.states.file.managed(name=str(target), contents=good, check_cmd=command)
    assert ret.result is True and target.read_text() == good, ret.comment
    # A filter BIRD cannot parse: the state fails with BIRD's words, the file stays.
    broken = good.replace(
        "filter kubesalt_to_nodes {", "filter kubesalt_to_nodes {\n  if net ~ [", 1
    )
    ret = loaders.states.file.managed(name=str(target), contents=broken, check_cmd=command)
    assert ret.result is False, ret.raw
    assert "check_cmd execution failed" in ret.comment and "syntax error" in ret.comment
    assert target.read_text() == good
