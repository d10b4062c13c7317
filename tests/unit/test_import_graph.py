"""The repo's import graph, read statically (``ast``): who may import whom.

- the loader modules (``_modules``, ``_states``, ``_beacons``, ``_runners``) import the shared
  package ``kubesalt_core`` and nothing else of the project (Salt's loader joins them);
- ``kubesalt_core`` imports only itself;
- the lab imports ``kubesalt_core`` and itself, never a loader module or the tests;
- the benchmarks import ``kubesalt_core``, the lab and ``bench/common.py``, never the tests;
- no project import is wrapped in ``try``/``except ImportError`` (one import root), and
  none sits inside a function.
"""

import ast
import types
from pathlib import Path

import pytest

import kubesalt_core
from tests.conftest import REPO

LOADER_DIRS = ("_modules", "_states", "_beacons", "_runners")
PROJECT = ("kubesalt_core", "kubesalt_ext", "kubesalt_lab", "tests", "common")


def _layer(path):
    rel = path.relative_to(REPO).parts
    if rel[0] in LOADER_DIRS:
        return "loader"
    if rel[:2] == ("_utils", "kubesalt_core"):
        return "kubesalt_core"
    return {"lab": "kubesalt_lab", "bench": "bench", "tests": "tests"}.get(rel[0], rel[0])


def _imported_roots(node):
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []


def _python_files():
    files = []
    for top in (*LOADER_DIRS, "_utils", "kubesalt_ext", "lab", "bench", "tests"):
        files += [p for p in (REPO / top).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def import_graph():
    """``{(layer, imported project root): [files]}`` over every Python file of the repo."""
    edges = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            for root in _imported_roots(node):
                if root in PROJECT:
                    edges.setdefault((_layer(path), root), []).append(str(path.relative_to(REPO)))
    return edges


ALLOWED = {
    "loader": {"kubesalt_core"},
    "kubesalt_core": {"kubesalt_core"},
    "kubesalt_ext": set(),
    "kubesalt_lab": {"kubesalt_core", "kubesalt_lab"},
    "bench": {"kubesalt_core", "kubesalt_lab", "common"},
    "tests": {"kubesalt_core", "kubesalt_ext", "kubesalt_lab", "tests"},
}


def test_every_layer_imports_only_what_it_may():
    graph = import_graph()
    assert ("loader", "kubesalt_core") in graph and ("bench", "common") in graph
    wrong = {edge: files for edge, files in graph.items() if edge[1] not in ALLOWED[edge[0]]}
    assert wrong == {}


def misplaced_project_imports(source):
    """Line numbers of project imports that are not statements of the module's top level
    (inside a ``try``, an ``if`` or a function)."""
    tree = ast.parse(source)
    top_level = {id(node) for node in tree.body}
    return [
        node.lineno
        for node in ast.walk(tree)
        if any(root in PROJECT for root in _imported_roots(node)) and id(node) not in top_level
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in _python_files() if _layer(p) in ("loader", "kubesalt_core")],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_project_imports_sit_at_the_top_and_unguarded(path):
    assert misplaced_project_imports(path.read_text()) == []


def test_a_guarded_or_late_import_is_found():
    guarded = "try:\n    import kubesalt_core.pki\nexcept ImportError:\n    pass\n"
    late = "import os\n\n\ndef f():\n    from kubesalt_core import pki\n"
    assert misplaced_project_imports(guarded) == [2]
    assert misplaced_project_imports(late) == [5]


def test_the_shared_code_lives_only_in_its_package():
    assert not list(Path(REPO, "_utils").glob("*.py")), "shared code belongs in kubesalt_core"


# What the package's __init__ itself defines (forget, __version__, __file__ ...): used
# without importing a submodule. Its submodules are modules, and need their import.
_PACKAGE_NAMES = {
    f"kubesalt_core.{name}"
    for name, value in vars(kubesalt_core).items()
    if not isinstance(value, types.ModuleType)
}


def unimported_submodules(source):
    """``kubesalt_core.<name>`` used in ``source`` without ``import kubesalt_core.<name>``:
    it works only when some other module happened to import it first."""
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names if a.name.startswith("kubesalt_core.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "kubesalt_core":
            imported |= {f"kubesalt_core.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubesalt_core."):
            imported.add(node.module)
    used = {
        f"kubesalt_core.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "kubesalt_core"
    }
    return sorted(used - imported - _PACKAGE_NAMES)


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_used_submodule_is_imported(path):
    assert unimported_submodules(path.read_text()) == []


def test_an_unimported_submodule_is_found():
    source = "import kubesalt_core.pki\n\nkubesalt_core.pki.CAS, kubesalt_core.pem.read\n"
    assert unimported_submodules(source) == ["kubesalt_core.pem"]


def test_what_the_package_itself_defines_needs_no_submodule_import():
    source = "import kubesalt_core.pki\n\nkubesalt_core.forget(), kubesalt_core.__version__\n"
    assert unimported_submodules(source) == []
