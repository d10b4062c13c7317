"""kubesalt's shared code: the pillar model, the certificate catalogue, the component table,
the etcd, Calico and repair decisions. Plain Python, no Salt dunders.

Every loader module imports it the same way (``import kubesalt_core.pki``), whichever route
delivered it:

- ``pip install kubesalt``: installed as a top-level package (setup.cfg maps it from
  ``_utils/kubesalt_core``);
- ``saltutil.sync_all`` from a master's file_roots: Salt copies ``_utils/kubesalt_core`` whole
  into the minion's ``extmods/utils``, which its loader puts on ``sys.path`` while it loads a
  module.

When both are present, the first one imported in the process is the one used;
``salt '*' kubesalt.loaded_from`` says which, and its version.

This file imports none of the package's modules: Salt's utils loader also loads it as a
module of its own.
"""

import sys

__version__ = "0.2.0"


def forget():
    """Drop this package and its modules from ``sys.modules``; whoever imported them keeps
    the module objects it holds.

    For code that runs in a minion's long-lived main process (the journal beacon): every
    job process is forked from it and inherits its ``sys.modules``, so a package kept
    there would shadow the copy a later ``saltutil.sync_all`` (or a ``pip install``) put on
    disk, until the minion restarts. Forgotten, each job imports the copy on disk.
    """
    for name in [n for n in sys.modules if n == __name__ or n.startswith(__name__ + ".")]:
        del sys.modules[name]
