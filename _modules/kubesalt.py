"""
kubesalt: the cluster model from pillar, validated before anything changes.

Every kubesalt state reads the cluster from one pillar key, ``kubesalt``, merged over the
formula's defaults (``salt://kubesalt/defaults.yaml``). This module merges, validates and
answers "which roles does this minion have" for the rest of the formula.

Roles come from pillar only: the master compiles pillar for the authenticated minion id,
and this module looks the minion up by ``__opts__['id']``. Grains (which a minion sets for
itself) are never consulted.

Pillar example (see ``pillar/pillar.example`` for every key)::

    kubesalt:
      cluster: {name: lab, domain: cluster.local}
      network:
        as_number: 64512
        node_cidr: 198.18.0.0/24
        pod_cidr: 198.19.0.0/16
        service_cidr: 198.18.16.0/20
        cluster_dns_ip: 198.18.16.10
      nodes:
        master-1: {roles: [master], ip: 198.18.0.11}
        worker-1: {roles: [worker], ip: 198.18.0.21}

The module is available either from a master's file_roots (``saltutil.sync_all``) or,
after ``pip install kubesalt``, through Salt's ``salt.loader`` entry point.
"""

import logging
import os

import salt.utils.yaml
from salt.exceptions import CommandExecutionError

import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema

log = logging.getLogger(__name__)


DEFAULTS_URL = "salt://kubesalt/defaults.yaml"


def _defaults(defaults):
    if defaults is not None:
        return defaults
    text = __salt__["cp.get_file_str"](DEFAULTS_URL)
    if not text:
        raise CommandExecutionError(
            f"cannot read the formula defaults {DEFAULTS_URL}: is the kubesalt formula "
            "(the repo's states/ directory) in file_roots?"
        )
    return salt.utils.yaml.safe_load(text) or {}


def _merged(defaults):
    return kubesalt_core.pillar.merge(
        _defaults(defaults), __pillar__.get(kubesalt_core.pillar.PILLAR_KEY)
    )


def _report(problems):
    return {
        "valid": not kubesalt_core.pillar_checks.errors(problems),
        "errors": [str(p) for p in problems if p.level == kubesalt_core.pillar_checks.ERROR],
        "warnings": [str(p) for p in problems if p.level == kubesalt_core.pillar_checks.WARNING],
    }


def validate(defaults=None):
    """
    Validate the ``kubesalt`` pillar merged over the formula defaults.

    Returns ``{"valid": bool, "errors": [...], "warnings": [...]}``; each entry names the
    pillar key (``kubesalt:nodes:worker-1:ip``) and what was expected. Warnings (an even
    number of masters, no worker) do not stop a run; errors do.

    defaults
        The formula defaults as a dict. Default: read ``salt://kubesalt/defaults.yaml``.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt.validate
    """
    return _report(kubesalt_core.pillar_schema.validate(_merged(defaults)))


def config(defaults=None):
    """
    Return the validated cluster config: the ``kubesalt`` pillar merged over the defaults,
    with every path under ``paths:root``.

    Raises ``CommandExecutionError`` listing every error when the pillar is invalid, so a
    template that renders from it stops instead of writing half a cluster.

    defaults
        The formula defaults as a dict. Default: read ``salt://kubesalt/defaults.yaml``.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt.config
    """
    merged = _merged(defaults)
    report = _report(kubesalt_core.pillar_schema.validate(merged))
    if not report["valid"]:
        raise CommandExecutionError(
            f"pillar '{kubesalt_core.pillar.PILLAR_KEY}' is invalid, nothing was changed: "
            + "; ".join(report["errors"])
        )
    merged["paths"] = kubesalt_core.pillar.resolve_paths(merged["paths"])
    return merged


def roles(minion_id=None):
    """
    Return the roles pillar gives a minion (``[]`` when pillar does not list it).

    minion_id
        Whose roles to look up. Default: this minion's own id.

    CLI Example:

    .. code-block:: bash

        salt 'worker-1' kubesalt.roles
        salt-call kubesalt.roles minion_id=master-2
    """
    return kubesalt_core.pillar.roles_of(
        __pillar__.get(kubesalt_core.pillar.PILLAR_KEY), minion_id or __opts__["id"]
    )


def node(minion_id=None):
    """
    Return a minion's entry under ``kubesalt:nodes`` with its ``id``, or ``{}`` when pillar
    does not list it.

    minion_id
        Which node. Default: this minion's own id.

    CLI Example:

    .. code-block:: bash

        salt 'master-1' kubesalt.node
    """
    return kubesalt_core.pillar.node_of(
        __pillar__.get(kubesalt_core.pillar.PILLAR_KEY), minion_id or __opts__["id"]
    )


def assigned_states(defaults=None):
    """
    Return the SLS a highstate applies on this minion; ``top.sls`` renders from it.

    Validation always comes first; an invalid pillar gets only validation (which fails
    and stops the run); a minion that pillar does not know gets only a notice.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt.assigned_states
    """
    present = kubesalt_core.pillar.PILLAR_KEY in __pillar__
    problems = kubesalt_core.pillar_schema.validate(_merged(defaults)) if present else []
    return kubesalt_core.pillar.assigned_states(present, problems, roles())


def unassigned_reason():
    """
    Explain why this minion gets no kubesalt states (``""`` when it does get some).

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt.unassigned_reason
    """
    minion_id = __opts__["id"]
    if kubesalt_core.pillar.PILLAR_KEY not in __pillar__:
        return (
            f"minion {minion_id!r} has no '{kubesalt_core.pillar.PILLAR_KEY}' pillar, so it gets "
            "no kubesalt states; target it in pillar top.sls to make it part of a cluster"
        )
    if not roles():
        return (
            f"minion {minion_id!r} is not listed under pillar "
            f"'{kubesalt_core.pillar.PILLAR_KEY}:nodes', so it gets no kubesalt states; add "
            f"'{minion_id}: {{roles: [...], ip: ...}}' there to give it a role"
        )
    return ""


def loaded_from():
    """
    Return where this minion's kubesalt code came from: ``modules``, the directory of the
    execution modules (a minion's extension_modules after ``saltutil.sync_all``, or the
    installed package), and ``shared``, the directory of the ``kubesalt_core`` package they
    all import (a synced copy under extension_modules' ``utils``, or the installed one).

    When a minion has kubesalt both from pip and from a sync, ``shared`` names the copy that
    is actually in use, and ``version`` is its version.

    CLI Example:

    .. code-block:: bash

        salt '*' kubesalt.loaded_from
    """
    return {
        "modules": os.path.dirname(os.path.abspath(__file__)),
        "shared": os.path.dirname(os.path.abspath(kubesalt_core.__file__)),
        "version": kubesalt_core.__version__,
    }
