"""
kubesalt_etcd_member: one etcd member's way in and out of the cluster, on its own host.

What to do is decided by ``kubesalt_core.etcd_member`` from facts read here (the live
cluster, whether this member answers, whether its data dir holds data); the functions here
read those facts and carry the plan out: the data dir, the member-list file etcd reads on
its first start, and the service. ``join_plan`` / ``leave_plan`` say what ``join`` /
``leave`` would do and change nothing: the ``kubesalt_etcd`` states show them under
``test=True``.

The connection arguments (``endpoints``, ``cert``, ``key``, ``cacert``) are those of
``kubesalt_etcd``; by default every master, with the apiserver-etcd-client certificate.
"""

import datetime
import errno
import os
import pwd
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

import kubesalt_core.etcd
import kubesalt_core.etcd_member
import kubesalt_core.files
import kubesalt_core.pem

CONNECTION = ("endpoints", "cert", "key", "cacert")


def _conn(kwargs):
    return {k: kwargs[k] for k in CONNECTION if kwargs.get(k)}


def _urls(value):
    return [value] if isinstance(value, str) else list(value)


def _has_data(data_dir):
    """etcd would start from ``data_dir``: its write-ahead log holds a file. (An etcd that
    failed to bootstrap leaves ``member/snap/db`` behind, and no log.)"""
    if not data_dir:
        return False
    try:
        return any(n.endswith(".wal") for n in os.listdir(os.path.join(data_dir, "member", "wal")))
    except (FileNotFoundError, NotADirectoryError):
        return False


def _holds_member(data_dir):
    return bool(data_dir) and os.path.isdir(os.path.join(data_dir, "member"))


def _settled(env_file, name, peer_urls, token):
    """True when ``env_file`` already names only this member (or is not ours to judge)."""
    if not env_file:
        return True
    wanted = kubesalt_core.etcd.settled_env(name, _urls(peer_urls)[0], token)
    try:
        with open(env_file) as stream:
            return stream.read() == wanted
    except FileNotFoundError:
        return False


def _planned(name, peer_urls, client_urls, data_dir, founders, service, conn, settled=True):
    live = __salt__["kubesalt_etcd.live_cluster"](**conn)
    local_answers = __salt__["kubesalt_etcd.answers"](_urls(client_urls)[0], **conn)
    try:
        return kubesalt_core.etcd_member.join_plan(
            live, local_answers, _has_data(data_dir), name, _urls(peer_urls),
            founders or {}, service, settled,
        )  # fmt: skip
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None


def join_plan(
    name,
    peer_urls,
    client_urls,
    data_dir,
    founders=None,
    service="etcd",
    env_file=None,
    token="kubesalt",
    **kwargs,
):
    """
    What :func:`join` would do for member ``name`` on this host, and nothing else:
    ``{"changes": {key: what}, "comment": ...}`` (no changes: it is a voting member and
    answers, or it waits for its peers). With ``env_file`` (and the cluster ``token``),
    also whether that file must come to name only this member.

    CLI Example:

    .. code-block:: bash

        salt master-4 kubesalt_etcd_member.join_plan master-4 https://198.18.0.14:2380 \\
            https://198.18.0.14:2379 /var/lib/etcd
    """
    settled = _settled(env_file, name, peer_urls, token)
    plan = _planned(
        name, peer_urls, client_urls, data_dir, founders, service, _conn(kwargs), settled
    )
    comment = "would " + "; then ".join(plan.changes.values()) if plan.changes else plan.comment
    return {"changes": plan.changes, "comment": comment}


def join(
    name,
    peer_urls,
    client_urls,
    data_dir,
    env_file,
    founders=None,
    token="kubesalt",
    service="etcd",
    timeout=180,
    **kwargs,
):
    """
    Take member ``name`` on this host into the cluster (see ``kubesalt_etcd.member_present``):
    found it, join as a learner and promote, or start a member that is only down. Once it
    answers from its data dir, ``env_file`` names only this member
    (``kubesalt_core.etcd.settled_env``). Returns ``{"changes", "comment", "started"}``; on
    a failure half-way the error says what was done before it.

    CLI Example:

    .. code-block:: bash

        salt master-4 kubesalt_etcd_member.join master-4 https://198.18.0.14:2380 \\
            https://198.18.0.14:2379 /var/lib/etcd /etc/etcd/cluster.env
    """
    conn = _conn(kwargs)
    timeout = float(timeout)
    peer_urls, client_url = _urls(peer_urls), _urls(client_urls)[0]
    settled = _settled(env_file, name, peer_urls, token)
    plan = _planned(name, peer_urls, client_urls, data_dir, founders, service, conn, settled)
    done = {"changes": {}, "comment": plan.comment, "started": False}
    try:
        _carry_out(plan, done, name, peer_urls, client_url, data_dir, env_file, token,
                   service, timeout, conn, founders)  # fmt: skip
        if done["started"] and _has_data(data_dir):
            # etcd read the bootstrap list on this start; from now on its data dir rules.
            _write_settled(env_file, name, peer_urls, token)
    except (CommandExecutionError, SaltInvocationError) as err:
        before = ", ".join(done["changes"]) or "nothing"
        raise CommandExecutionError(f"{err} (done before this: {before})") from None
    return done


def _carry_out(plan, done, name, peer_urls, client_url, data_dir, env_file, token, service,
               timeout, conn, founders):  # fmt: skip
    changes = done["changes"]
    member = plan.member
    for step in plan.steps:
        action = step.action
        if action == "found":
            _write_env(env_file, "new", plan.initial, token)
            changes["founded"] = plan.initial
        elif action == "remove":
            removed = __salt__["kubesalt_etcd.remove"](member.id, timeout=timeout, **conn)
            changes["removed"] = f"old entry {removed['id']} at {','.join(removed['peer_urls'])}"
        elif action == "wait":
            _wait_for_other_join(conn, timeout)
            # The learner finished (or went): decide again, from what the cluster says now.
            again = _planned(name, peer_urls, [client_url], data_dir, founders, service, conn)
            if again.has("wait"):
                raise CommandExecutionError("another member started joining meanwhile")
            return _carry_out(again, done, name, peer_urls, client_url, data_dir, env_file,
                              token, service, timeout, conn, founders)  # fmt: skip
        elif action == "move_data":
            changes["data_dir"] = f"moved aside to {move_aside(data_dir)}"
        elif action == "add":
            added = __salt__["kubesalt_etcd.add"](
                name, peer_urls, learner=True, timeout=timeout, **conn
            )
            changes["added"] = f"learner {added['member']['id']}"
            _write_env(env_file, "existing", added["initial_cluster"], token)
        elif action == "write_env":
            _write_env(env_file, "existing", plan.initial, token)
        elif action == "settle":
            _write_settled(env_file, name, peer_urls, token)
            changes["bootstrap"] = step.says
        elif action == "start":
            if _start(service, client_url, timeout, conn):
                changes["started"] = service
                done["started"] = True
        elif action == "ready":
            __salt__["kubesalt_etcd.wait_ready"](client_url, timeout=timeout, **conn)
        elif action == "promote":
            __salt__["kubesalt_etcd.wait_ready"](client_url, timeout=timeout, **conn)
            promoted = __salt__["kubesalt_etcd.promote"](name, timeout=timeout, **conn)
            if promoted["promoted"]:
                changes["promoted"] = f"{name} votes"
    return done


def leave_plan(name, data_dir=None, service="etcd", **kwargs):
    """
    What :func:`leave` would do for member ``name``, and nothing else:
    ``{"changes", "comment"}``. Raises when the removal would break quorum.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_member.leave_plan master-3
    """
    plan = _leave_planned(name, data_dir, service, _conn(kwargs))
    comment = "would " + "; ".join(plan.changes.values()) if plan.changes else plan.comment
    return {"changes": plan.changes, "comment": comment}


def _leave_planned(name, data_dir, service, conn):
    check = __salt__["kubesalt_etcd.removal_check"](name, **conn)
    local = name == __opts__["id"]
    service_runs = local and bool(__salt__["service.status"](service))
    try:
        return kubesalt_core.etcd_member.leave_plan(
            name, check, local, _holds_member(data_dir), service_runs, service
        )
    except ValueError as err:
        raise CommandExecutionError(str(err)) from None


def leave(name, data_dir=None, env_file=None, service="etcd", timeout=60, **kwargs):
    """
    Remove member ``name`` when quorum holds without it (see
    ``kubesalt_etcd.member_absent``); on the member's own host, also stop etcd there and
    move its data dir aside. Returns ``{"changes", "comment"}``.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_member.leave master-3
    """
    conn = _conn(kwargs)
    plan = _leave_planned(name, data_dir, service, conn)
    changes = {}
    try:
        for step in plan.steps:
            if step.action == "remove":
                removed = __salt__["kubesalt_etcd.remove"](name, timeout=timeout, **conn) or {}
                if removed.get("leader_moved_to"):
                    changes["leader"] = f"handed over to {removed['leader_moved_to']}"
                member = plan.member
                changes["removed"] = f"{member['id']} at {','.join(member['peer_urls'])}"
            elif step.action == "retire":
                __salt__["service.stop"](service)
                __salt__["service.disable"](service)
                changes["stopped"] = service
                if _holds_member(data_dir):
                    changes["data_dir"] = f"moved aside to {move_aside(data_dir)}"
                if env_file and os.path.exists(env_file):
                    os.unlink(env_file)
    except (CommandExecutionError, SaltInvocationError) as err:
        before = ", ".join(changes) or "nothing"
        raise CommandExecutionError(f"{err} (done before this: {before})") from None
    return {"changes": changes, "comment": plan.comment}


def move_aside(data_dir):
    """
    Move what ``data_dir`` holds to ``<data_dir>.removed-<UTC time>``; never delete it.
    Returns where it went.

    The data dir itself stays (it may be a mount point). When the sibling is on another
    file system, the contents go to ``<data_dir>/removed-<UTC time>`` instead (etcd logs a
    warning about the extra directory and ignores it).

    CLI Example:

    .. code-block:: bash

        salt master-3 kubesalt_etcd_member.move_aside /var/lib/etcd
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    entries = sorted(os.listdir(data_dir))
    for target in (f"{data_dir.rstrip('/')}.removed-{stamp}", f"{data_dir}/removed-{stamp}"):
        os.makedirs(target, mode=0o700, exist_ok=True)
        try:
            for entry in entries:
                os.rename(os.path.join(data_dir, entry), os.path.join(target, entry))
        except OSError as err:
            if err.errno != errno.EXDEV or entries[0] != entry:
                raise
            os.rmdir(target)
            continue
        return target
    raise CommandExecutionError(f"could not move {data_dir} aside")


def _write_env(env_file, state, initial, token):
    text = kubesalt_core.etcd.cluster_env(state, initial, token)
    kubesalt_core.files.write_atomically(env_file, text, 0o644)


def _write_settled(env_file, name, peer_urls, token):
    text = kubesalt_core.etcd.settled_env(name, peer_urls[0], token)
    kubesalt_core.files.write_atomically(env_file, text, 0o644)


def _start(service, url, timeout, conn):
    """Start (or restart, if it runs but does not answer) the unit, then wait until the
    member answers at its client URL. False when it already answered."""
    if __salt__["kubesalt_etcd.answers"](url, **conn):
        return False
    if "service.start" not in __salt__:
        raise CommandExecutionError(
            f"etcd does not answer at {url} and this host has no service manager "
            f"Salt can drive to start {service}"
        )
    # no_block: a founder's etcd reports ready only once a majority of founders run.
    if __salt__["service.status"](service):
        __salt__["service.restart"](service, no_block=True)
    else:
        __salt__["service.start"](service, no_block=True)
    deadline = time.monotonic() + timeout
    while not __salt__["kubesalt_etcd.answers"](url, **conn):
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{service} was started but does not answer at {url} after "
                f"{timeout} s; see journalctl -u {service}"
            )
        time.sleep(0.5)
    return True


def _wait_for_other_join(conn, timeout):
    """Wait while another member is a learner."""
    deadline = time.monotonic() + timeout
    while True:
        current = [
            kubesalt_core.etcd.member_from_dict(m)
            for m in __salt__["kubesalt_etcd.members"](**conn)
        ]
        learners = [m for m in current if m.is_learner]
        if not learners:
            return
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{learners[0].describe()} is still joining after {timeout} s; kubesalt "
                "joins one member at a time. Let its run finish, or remove the stale "
                "learner with kubesalt_etcd.member_absent"
            )
        time.sleep(1)


# --- what etcd owns: its user, its data, its copies of its TLS files -----------------------


def _owner(path):
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_uid, found.st_gid, found.st_mode & 0o7777


def _ids(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def owned_plan():
    """
    What :func:`owned` would change: etcd's system user, its data directory (0700, owned
    by it, everything in it too) and its copies of its certificates and keys (0600, the
    same bytes as the originals in the PKI directory). ``{}``: nothing.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_member.owned_plan
    """
    settings = __salt__["kubesalt_etcd.settings"]()
    user, ids = settings["user"], _ids(settings["user"])
    changes = {}
    if ids is None:
        changes["user"] = f"{user} created (system user, no login)"
    want = None if ids is None else (*ids, 0o700)
    for directory in (settings["data_dir"], settings["tls_dir"]):
        held = _owner(directory)
        if held is None or held != want:
            changes.setdefault("directories", []).append(directory)
    # etcd must pass through the (root's) config directory to its copies.
    parent = _owner(settings["config_dir"])
    if parent is not None and parent[2] & 0o011 != 0o011:
        changes["traversable"] = settings["config_dir"]
    copies = []
    for copy, original in sorted(settings["tls_copies"].items()):
        wanted = None if ids is None else (*ids, 0o600)
        if _owner(copy) != wanted or kubesalt_core.pem.read(copy) != kubesalt_core.pem.read(
            original
        ):
            copies.append(copy)
    if copies:
        changes["tls copies"] = copies
    return changes


def owned():
    """
    Make etcd's system user (when missing), give it its data directory (recursively) and
    write its copies of its certificates and keys from the originals: see
    :func:`owned_plan`. Returns the changes made. etcd reads its TLS files again for every
    new connection, so a renewed certificate needs no restart.

    CLI Example:

    .. code-block:: bash

        salt master-1 kubesalt_etcd_member.owned
    """
    settings = __salt__["kubesalt_etcd.settings"]()
    changes = owned_plan()
    if not changes:
        return {}
    user = settings["user"]
    if _ids(user) is None:
        if not __salt__["group.info"](user):
            __salt__["group.add"](user, system=True)
        created = __salt__["user.add"](
            user,
            gid=user,
            system=True,
            home=settings["data_dir"],
            createhome=False,
            shell="/usr/sbin/nologin",
        )
        if not created or _ids(user) is None:
            raise CommandExecutionError(f"could not create the system user {user!r}")
    uid, gid = _ids(user)
    if "traversable" in changes:
        os.chmod(settings["config_dir"], 0o755)
    for directory in changes.get("directories", []):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        for root, dirs, files in os.walk(directory):
            for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                os.lchown(name, uid, gid)
    for copy in changes.get("tls copies", []):
        original = settings["tls_copies"][copy]
        data = kubesalt_core.pem.read(original)
        if data is None:
            raise CommandExecutionError(
                f"{original} is missing: kubesalt_pki issues it first; nothing was copied"
            )
        kubesalt_core.files.write_atomically(copy, data, 0o600)
        os.chown(copy, uid, gid)
    return changes
