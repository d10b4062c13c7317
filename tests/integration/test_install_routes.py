"""`pip install .` and `pip install -e .` make the modules visible to Salt's loader with no
sync: salt-call --local with empty file_roots finds them through the entry point.

Each test builds a throwaway venv that sees the project venv's salt (a .pth line) but has
only its own kubesalt, installed from a copy of the repo so the checkout stays clean.
"""

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from kubesalt_ext import __version__ as VERSION
from tests.conftest import REPO

PROJECT_SITE = sysconfig.get_paths()["purelib"]
SHIPPED = (
    "setup.cfg",
    "pyproject.toml",
    "README.md",
    "kubesalt_ext",
    "_modules",
    "_states",
    "_utils",
    "_beacons",
    "_runners",
)


@pytest.fixture
def source_copy(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SHIPPED:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    return src


@pytest.fixture
def clean_venv(tmp_path):
    root = tmp_path / "venv"
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Salt, pip and setuptools from the project venv; kubesalt only from this venv.
    Path(site, "project-venv.pth").write_text(PROJECT_SITE + "\n")
    return python, Path(site)


@pytest.fixture
def salt_call_config(tmp_path):
    """A masterless minion with nothing in file_roots and a one-node pillar."""
    conf = tmp_path / "conf"
    pillar = tmp_path / "pillar"
    empty_states = tmp_path / "states"
    for path in (conf, pillar, empty_states):
        path.mkdir()
    (pillar / "top.sls").write_text("base:\n  '*':\n    - cluster\n")
    (pillar / "cluster.sls").write_text(
        "kubesalt:\n  nodes:\n    node-a: {roles: [worker, master], ip: 198.18.0.5}\n"
    )
    (conf / "minion").write_text(
        f"id: node-a\nfile_client: local\nroot_dir: {tmp_path / 'root'}\n"
        f"file_roots: {{base: [{empty_states}]}}\npillar_roots: {{base: [{pillar}]}}\n"
    )
    return conf


def _pip_install(python, *args):
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run([*pip, "--no-index", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _salt_call(python, conf, *args):
    proc = subprocess.run(
        [
            python,
            "-c",
            "import salt.scripts; salt.scripts.salt_call()",
            "--local",
            "-c",
            str(conf),
            "--out=json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["local"]


KUBESALT_FUNCTIONS = [
    "kubesalt.assigned_states",
    "kubesalt.config",
    "kubesalt.loaded_from",
    "kubesalt.node",
    "kubesalt.roles",
    "kubesalt.unassigned_reason",
    "kubesalt.validate",
]


@pytest.mark.parametrize("editable", [False, True], ids=["pip-install", "pip-install-e"])
def test_pip_install_registers_the_modules(clean_venv, source_copy, salt_call_config, editable):
    python, site = clean_venv
    assert _salt_call(python, salt_call_config, "sys.list_functions", "kubesalt") == []

    _pip_install(python, *(["-e"] if editable else []), str(source_copy))

    assert _salt_call(python, salt_call_config, "sys.list_functions", "kubesalt") == (
        KUBESALT_FUNCTIONS
    )
    assert _salt_call(python, salt_call_config, "sys.list_state_functions", "kubesalt") == [
        "kubesalt.unassigned",
        "kubesalt.validated",
    ]
    loaded_from = _salt_call(python, salt_call_config, "kubesalt.loaded_from")
    if editable:
        expected = {"modules": source_copy / "_modules", "shared": source_copy / "_utils"}
    else:
        expected = {"modules": site / "kubesalt_ext" / "modules", "shared": site}
    expected["shared"] /= "kubesalt_core"
    assert loaded_from == {**{key: str(path) for key, path in expected.items()}, "version": VERSION}
    # The shared package comes along: roles from pillar, in order.
    assert _salt_call(python, salt_call_config, "kubesalt.roles") == ["master", "worker"]
    assert _salt_call(python, salt_call_config, "sys.list_functions", "kubesalt_heal") == [
        "kubesalt_heal.history",
        "kubesalt_heal.pause",
        "kubesalt_heal.paused",
        "kubesalt_heal.repair",
        "kubesalt_heal.reset",
        "kubesalt_heal.resume",
        "kubesalt_heal.status",
    ]
    # The beacon (minions) and the runner (master) come through the same entry point.
    dirs = subprocess.run(
        [python, "-c", "import json, kubesalt_ext; print(json.dumps(kubesalt_ext.loader_dirs()))"],
        capture_output=True,
        text=True,
        cwd=site,  # not the checkout, whose kubesalt_ext would shadow the installed one
    )
    assert dirs.returncode == 0, dirs.stderr
    found = {
        kind: sorted(p.name for d in paths for p in Path(d).glob("kubesalt*.py"))
        for kind, paths in json.loads(dirs.stdout).items()
        if kind in ("beacons", "runners")
    }
    assert found == {
        "beacons": ["kubesalt_journal.py"],
        "runners": [
            "kubesalt_etcd_restore.py",
            "kubesalt_node.py",
            "kubesalt_schedule.py",
            "kubesalt_upgrade.py",
        ],
    }


def test_interpreter_is_the_project_venv():
    """The routes above run salt from the project venv, not some other Python."""
    assert sys.prefix != sys.base_prefix


def test_the_wheel_ships_only_the_product(tmp_path, source_copy):
    """Built from a tree that also holds the lab, its tests and bench: none of it is shipped,
    and the wheel installs no `kubesalt-lab` command."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("lab", "tests", "bench"):
        shutil.copytree(REPO / name, source_copy / name, ignore=skip)
    wheels = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(wheels), str(source_copy)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = wheels.glob("kubesalt-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f"kubesalt-{VERSION}.dist-info/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {
        "kubesalt_ext",
        "kubesalt_core",
        f"kubesalt-{VERSION}.dist-info",
    }
    assert "kubesalt_core/pillar.py" in names and "kubesalt_ext/modules/kubesalt_pki.py" in names
    assert "console_scripts" not in entry_points and "kubesalt-lab" not in entry_points
    assert "[salt.loader]" in entry_points
