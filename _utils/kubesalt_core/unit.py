"""Every component kubesalt runs as a systemd unit: one record each (:class:`Component`).

A record says which role runs the component, which artifact and binary it runs, the SLS
that (re)applies it, its ordering, ports, certificates and hardening, and, as functions of
the cluster config and the node (values known only at run time, like kubeadm's certlist):
its ``ExecStart`` argv and config files, its environment files, extra service lines and
its health probe. Everything else is derived from :data:`COMPONENTS`: the unit files
(:func:`render`), the units each role manages (:func:`managed_units`, which the journal
beacon and the healer trust), the units each binary restarts (:func:`units_of_binary`), and
the state a repair re-applies (:func:`state_of`).

The formula writes what :func:`render` returns; the tests prove the same output with
``systemd-analyze verify``, the built binaries' own flags and config validation, and, for
Kubernetes objects, ``kubernetes-validate``.

No Salt dunders and no I/O here.
"""

from dataclasses import dataclass, field

import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.components
import kubesalt_core.pki


@dataclass(frozen=True)
class Rendered:
    """What the formula writes for one unit on one node."""

    unit: "kubesalt_core.components.Component"
    unit_path: str
    unit_text: str
    argv: tuple
    files: dict  # path -> (text, mode)
    executable: str
    directories: tuple  # what the unit writes under ProtectSystem=strict: must exist
    credentials: tuple = ()  # certificate and kubeconfig files it reads when it starts
    checks: dict = field(default_factory=dict)  # path -> its check (the path appended)


def _escape(word):
    # '%' starts a systemd specifier; '\' ends a continued line.
    return word.replace("%", "%%")


def unit_text(unit, executable, argv, environment_files=(), read_write=(), service_lines=()):
    """The unit file: journald logging, restarts with a start limit, ordering, hardening."""
    exec_lines = " \\\n    ".join(_escape(w) for w in [executable, *argv])
    unit_section = [
        "[Unit]",
        f"Description={unit.description}",
        f"Documentation={unit.documentation}",
    ]
    if unit.after:
        unit_section.append(f"After={' '.join(unit.after)}")
    if unit.wants:
        unit_section.append(f"Wants={' '.join(unit.wants)}")
    # Five failed starts within two minutes and systemd gives up: kubesalt's repair takes
    # over from there (a bad config or a missing cert is not fixed by restarting).
    unit_section += ["StartLimitIntervalSec=120", "StartLimitBurst=5"]
    service = [
        "[Service]",
        f"Type={unit.unit_type}",
    ]
    service += [f"EnvironmentFile={path}" for path in environment_files]
    service += [
        *service_lines,
        f"ExecStart={exec_lines}",
        "Restart=on-failure",
        "RestartSec=5",
        "StandardOutput=journal",
        "StandardError=journal",
        f"SyslogIdentifier={unit.name}",
        *unit.service_extra,
    ]
    if unit.hardening:
        service += ["# Hardening the component tolerates.", *unit.hardening]
    service += [f"ReadWritePaths={path}" for path in read_write]
    lines = [
        "# Managed by kubesalt: edits are replaced on the next state run.",
        *unit_section,
        "",
        *service,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render(config, node_id, name):
    """Everything the formula writes for component ``name`` on ``node_id``.

    config
        The validated cluster config with root-resolved paths (``kubesalt.config``).
    """
    unit = kubesalt_core.components.spec(name)
    ctx = kubesalt_core.component_context.Context(
        config, node_id, kubesalt_core.pki.Layout.of(config)
    )
    argv, files = unit.command(ctx)
    executable = kubesalt_core.artifact.executable(config, unit.artifact, unit.binary)
    directories = tuple(config["paths"][key] for key in unit.read_write)
    if unit.directories:
        directories += tuple(unit.directories(ctx))
    text = unit_text(
        unit,
        executable,
        argv,
        unit.environment_files(ctx) if unit.environment_files else (),
        directories,
        unit.service_lines(ctx, executable) if unit.service_lines else (),
    )
    return Rendered(
        unit=unit,
        unit_path=f"{config['paths']['systemd_dir']}/{unit.unit_name}",
        unit_text=text,
        argv=tuple(argv),
        files=files,
        executable=executable,
        directories=directories,
        credentials=credential_files(ctx, unit),
        checks=unit.config_check(ctx, executable) if unit.config_check else {},
    )


def credential_files(ctx, unit):
    """The files holding ``unit``'s certificates (and its kubeconfig): a unit started before
    one of them was re-issued still holds the old certificate."""
    paths = [ctx.layout.cert(name) for name in unit.certs]
    if unit.kubeconfig:
        paths.append(ctx.layout.kubeconfig(unit.kubeconfig))
    return tuple(paths)


def stale_credentials(started_at, modified):
    """The files of ``modified`` ({path: mtime}, epoch seconds) written after the unit
    started (``started_at``, epoch seconds; None: not running, nothing is stale)."""
    if started_at is None:
        return []
    return sorted(path for path, mtime in modified.items() if mtime > started_at)


def node_units(config, node_id, include_etcd=False):
    """Every unit of ``node_id``'s roles, rendered (etcd's only with ``include_etcd``: its
    own formula writes it, ordered against its membership)."""
    roles = config["nodes"][node_id]["roles"]
    return [
        render(config, node_id, c.name)
        for c in kubesalt_core.components.for_roles(roles)
        if (include_etcd or c.state == "kubesalt.units")
        and kubesalt_core.components.is_wanted(c, config)
    ]


def unwanted_units(config, node_id):
    """The units of ``node_id``'s roles the site turned off: stopped and removed."""
    roles = config["nodes"][node_id]["roles"]
    return [
        c
        for c in kubesalt_core.components.for_roles(roles)
        if not kubesalt_core.components.is_wanted(c, config)
    ]
