"""The suite's two processes under pytest-xdist (make test): the lab tier in one, every
other tier beside it in the other, each in its own order; a run that would fill the lab's
cache from both processes is refused."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, xdist_scope

LAB_TEST = "tests/lab/test_lab_conformance.py::test_without_a_lab_it_exits_2_and_says_so"
UNIT_TESTS = ("tests/unit/test_ingress.py", "tests/unit/test_prepare_background.py")


def _pytest(*args, prepare="0"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["KUBESALT_TEST_PREPARE"] = prepare
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadscope", "-v", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip


def test_the_lab_tier_is_one_scope_and_every_other_tier_another():
    assert xdist_scope("tests/lab/test_lab_etcd.py::test_x") == "lab"
    for other in ("tests/unit/test_a.py::t", "tests/integration/test_b.py::t[lab]"):
        assert xdist_scope(other) == "beside the lab"


def test_the_lab_runs_in_one_process_and_the_other_tiers_in_the_other():
    said = _pytest(LAB_TEST, *UNIT_TESTS)
    assert said.returncode == 0, said.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED (tests/\w+)/(\S+?)::", said.stdout, re.M)
    workers = {tier: {w for w, t, _m in ran if t == tier} for tier in ("tests/lab", "tests/unit")}
    # One process each, not the same one.
    assert [len(w) for w in workers.values()] == [1, 1], said.stdout[-3000:]
    assert workers["tests/lab"] != workers["tests/unit"], workers
    # ... and the unit modules in the order they were collected.
    modules = [m for _w, tier, m in ran if tier == "tests/unit"]
    assert list(dict.fromkeys(modules)) == [u.rsplit("/", 1)[1] for u in UNIT_TESTS], modules


def test_a_run_that_would_prepare_the_cache_in_both_processes_is_refused():
    said = _pytest(LAB_TEST, UNIT_TESTS[0], prepare="1")
    assert said.returncode == pytest.ExitCode.USAGE_ERROR, said.stdout[-2000:]
    assert "run `kubesalt-lab prepare` first and set KUBESALT_TEST_PREPARE=0" in said.stderr
    assert "PASSED" not in said.stdout
