"""The codebase's shape, read statically (``ast``), as the README's layout section promises:

- no Python file of the repo is over 600 lines;
- no exception class is defined in a loader module (they live in ``kubesalt_core.errors``);
- no execution function takes ``test`` (a state decides ``test=True``, and only there);
- a state function looks at ``__opts__["test"]`` at most once (one test branch).

Each rule's finder is also shown a planted breach, so a rule cannot pass by finding nothing.
"""

import ast

import pytest

from tests.conftest import REPO
from tests.unit.test_import_graph import LOADER_DIRS, _python_files

MAX_LINES = 600


def _rel(path):
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def long_files(paths):
    return [_rel(p) for p in paths if len(p.read_text().splitlines()) > MAX_LINES]


def exception_classes(source):
    """Names of classes deriving from something named ``*Error`` or ``*Exception``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b).split(".")[-1] for b in node.bases]
            if any(b.endswith(("Error", "Exception")) for b in bases):
                found.append(node.name)
    return found


def _public_functions(source):
    tree = ast.parse(source)
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


def functions_taking_test(source):
    names = []
    for function in _public_functions(source):
        arguments = function.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        if any(a.arg == "test" for a in every):
            names.append(function.name)
    return names


def _reads_test_opt(node):
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "__opts__"
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == "test"
    )


def repeated_test_reads(source):
    """``{state function: how often it reads __opts__["test"]}`` for those reading it twice
    or more (helpers it calls count apart: they are module functions of their own)."""
    counts = {}
    for function in _public_functions(source):
        seen = sum(_reads_test_opt(n) for n in ast.walk(function))
        if seen > 1:
            counts[function.name] = seen
    return counts


def _loader_files(folder=None):
    folders = (folder,) if folder else LOADER_DIRS
    return [p for p in _python_files() if p.relative_to(REPO).parts[0] in folders]


def test_no_file_is_over_600_lines(tmp_path):
    assert long_files(_python_files()) == []
    planted = tmp_path / "big.py"
    planted.write_text("x = 1\n" * (MAX_LINES + 1))
    (planted.parent / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert long_files([planted, planted.parent / "small.py"]) == [str(planted)]


@pytest.mark.parametrize("path", _loader_files(), ids=_rel)
def test_no_loader_module_defines_an_exception_class(path):
    assert exception_classes(path.read_text()) == []


@pytest.mark.parametrize("path", _loader_files("_modules"), ids=_rel)
def test_no_execution_function_takes_test(path):
    assert functions_taking_test(path.read_text()) == []


@pytest.mark.parametrize("path", _loader_files("_states"), ids=_rel)
def test_each_state_function_has_one_test_branch_at_most(path):
    assert repeated_test_reads(path.read_text()) == {}


def test_a_breach_of_each_rule_is_found():
    source = (
        "from salt.exceptions import CommandExecutionError\n\n\n"
        "class Refused(CommandExecutionError):\n    pass\n\n\n"
        "class Plain:\n    pass\n\n\n"
        "def issue(name, test=False):\n    pass\n\n\n"
        "def present(name):\n"
        "    if __opts__['test']:\n        return 1\n"
        "    return 2 if __opts__['test'] else 3\n\n\n"
        "def absent(name):\n    if __opts__['test']:\n        return 1\n"
    )
    assert exception_classes(source) == ["Refused"]
    assert functions_taking_test(source) == ["issue"]
    assert repeated_test_reads(source) == {"present": 2}
