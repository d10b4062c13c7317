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
``salt '*' kubesalt.loaded_from`` says which.

This file imports nothing: Salt's utils loader also loads it as a module of its own.
"""
