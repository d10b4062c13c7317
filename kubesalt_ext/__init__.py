"""Registers kubesalt's Salt loader directories with Salt through the ``salt.loader`` entry point.

After ``pip install kubesalt`` (or ``pip install -e .``) Salt finds the execution and state
modules without ``saltutil.sync_all``::

    salt-call --local sys.list_functions kubesalt
"""

from importlib import import_module
from pathlib import Path

__version__ = "0.1.0"

# Salt loader type -> subpackage that holds its modules (mapped from _modules/, _states/ ...
# in setup.cfg). Salt does not load "utils" from entry points; our modules import
# kubesalt_ext.utils directly when they were installed this way.
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
