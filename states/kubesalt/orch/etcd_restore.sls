{#- Bring etcd back from one snapshot when its quorum is lost for good:
      salt-run state.orchestrate kubesalt.orch.etcd_restore test=True \
          pillar='{"snapshot": "lab-20261204T220000Z-master-1.db"}'
    Optional pillar keys: source (the master holding the snapshot; by default the member its
    name says took it), sha256 (the digest it must have), force (restore although etcd still
    has a quorum: every write since the snapshot is lost).
    Repairs of kube-apiserver and etcd on the masters are paused (kubesalt_heal.pause) from
    the first step until the apiservers serve again.
    The runner kubesalt_etcd_restore.plan refuses, before anything changes, a bad argument,
    a master that does not answer or lacks etcdutl, a snapshot that does not verify or has
    another sha256, and a cluster that still has a quorum. Then: every apiserver stopped;
    the snapshot offered by its master to the others over mutual TLS with the etcd peer
    certificates, each copy checked against its sha256; every member restored from it into
    a new cluster (new token, revisions bumped and compacted so every watcher lists afresh,
    old data dirs moved aside); etcd started on every master together and waited for
    healthy; the apiservers started and waited for; a highstate of every master. Every
    step stops the run when it fails; a rerun starts over from the snapshot. #}
{%- set plan = salt["saltutil.runner"]("kubesalt_etcd_restore.plan",
                                       snapshot=salt["pillar.get"]("snapshot", ""),
                                       source=salt["pillar.get"]("source", ""),
                                       sha256=salt["pillar.get"]("sha256", ""),
                                       force=salt["pillar.get"]("force", False)) %}
{%- from "kubesalt/orch/params.jinja" import state_queue with context %}
{%- set ns = namespace(last="test: kubesalt-orch-etcd-restore-plan") %}
{%- set units = ["kube-apiserver", "etcd"] %}

{%- macro chain(id) %}
    - failhard: True
    - require:
      - {{ ns.last }}
{%- set ns.last = "salt: " ~ id %}
{%- endmacro %}

{%- macro on(id, function, targets, args=[], timeout=120) %}

{{ id }}:
  salt.function:
    - name: {{ function }}
    - tgt: {{ targets | join(",") }}
    - tgt_type: list
    - expect_minions: True
{%- if args %}
    - arg: {{ args | json }}
{%- endif %}
    - timeout: {{ timeout }}
{{- chain(id) }}
{%- endmacro %}

{%- if plan.problems %}

kubesalt-orch-etcd-restore-refused:
  test.fail_without_changes:
    - name: >-
        the restore of etcd is refused and nothing was changed: {{ plan.problems | join("; ") }}
{%- else %}

kubesalt-orch-etcd-restore-plan:
  test.succeed_without_changes:
    - name: {{ (["etcd restored from " ~ plan.snapshot ~ " (revision " ~ plan.revision ~ ", "
                 ~ plan["keys"] ~ " keys, sha256 " ~ plan.sha256 ~ ")"
                 ~ (", forced while a quorum lives" if plan.forced else "") ~ ":"]
                + plan.steps) | join("\n") | json }}
{#- No repair restarts what the restore keeps stopped (an apiserver's start would start
    etcd too); the pause ends with the restore, or by itself after an hour. #}
{%- for unit in units %}
{{- on("kubesalt-orch-etcd-restore-" ~ unit ~ "-repairs-paused", "kubesalt_heal.pause",
       plan.masters, [unit ~ ".service", "kubesalt.orch.etcd_restore", 3600]) }}
{%- endfor %}
{{- on("kubesalt-orch-etcd-restore-apiservers-stopped", "kubesalt_etcd_restore.stop_apiserver",
       plan.masters) }}
{%- if plan.others %}
{{- on("kubesalt-orch-etcd-restore-offered", "kubesalt_etcd_restore.offer", [plan.source],
       [plan.snapshot]) }}
{{- on("kubesalt-orch-etcd-restore-fetched", "kubesalt_etcd_restore.fetch", plan.others,
       [plan.source, plan.snapshot, plan.sha256], 600) }}
{{- on("kubesalt-orch-etcd-restore-offer-withdrawn", "kubesalt_etcd_restore.withdraw",
       [plan.source]) }}
{%- endif %}
{{- on("kubesalt-orch-etcd-restore-members-restored", "kubesalt_etcd_restore.restore",
       plan.masters, [plan.snapshot, plan.token], 600) }}
{#- Together: a restored member is ready only once a majority of them run. #}
{{- on("kubesalt-orch-etcd-restore-etcd-started", "service.start", plan.masters, ["etcd"], 300) }}

kubesalt-orch-etcd-restore-etcd-healthy:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ plan.masters | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy
{{- chain("kubesalt-orch-etcd-restore-etcd-healthy") }}
{{- on("kubesalt-orch-etcd-restore-apiservers-started", "service.start", plan.masters,
       ["kube-apiserver"], 300) }}
{{- on("kubesalt-orch-etcd-restore-apiservers-ready", "kubesalt_node.apiserver_ready",
       plan.masters, [], 420) }}

{%- for unit in units %}
{{- on("kubesalt-orch-etcd-restore-" ~ unit ~ "-repairs-resumed", "kubesalt_heal.resume",
       plan.masters, [unit ~ ".service"]) }}
{%- endfor %}

kubesalt-orch-etcd-restore-masters-applied:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ plan.masters | join(",") }}
    - tgt_type: list
    - highstate: True
{{- chain("kubesalt-orch-etcd-restore-masters-applied") }}
{%- endif %}
