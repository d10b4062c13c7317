"""Registers kubesalt's Salt loader directories with Salt through the ``salt.loader`` entry point.

After ``pip install kubesalt`` (or ``pip install -e .``) Salt finds the execution and state
modules without ``saltutil.sync_all``::

    salt-call --local sys.list_functions kubesalt

The code those modules share is the top-level package ``kubesalt_core`` (``_utils/kubesalt_core``
in the repo), which pip installs beside this one.
"""

from importlib import import_module, metadata
from pathlib import Path

# One source, kubesalt_core.__version__ (setup.cfg reads it), which also travels by sync.
# Not imported from there: Salt imports this package in every daemon's main process.
__version__ = metadata.version("kubesalt")

# Salt loader type -> subpackage that holds its modules (mapped from _modules/, _states/ ...
# in setup.cfg). Salt does not load "utils" from entry points, and needs not: the modules
# import kubesalt_core as a plain package.
_LOADER_PACKAGES = {
    "modules": "kubesalt_ext.modules",
    "states": "kubesalt_ext.states",
    "beacons": "kubesalt_ext.beacons",
    "runners": "kubesalt_ext.runners",
}


def loader_dirs():
    """Return ``{loader type: [directory, ...]}`` as Salt's entry-point loader expects."""
    dirs = {}
    for loader_type, package in _LOADER_PACKAGES.items():
        dirs[loader_type] = [str(Path(p)) for p in import_module(package).__path__]
    return dirs
