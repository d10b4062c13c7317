{#- Upgrade Kubernetes to pillar's versions:kubernetes (set it, and artifacts:kubernetes):
      salt-run state.orchestrate kubesalt.orch.upgrade test=True   # the plan, node by node
      salt-run state.orchestrate kubesalt.orch.upgrade
    The plan comes from the cluster (salt-run kubesalt_upgrade.plan): pre-flight (every
    minion answers, every Node Ready, every etcd member healthy) and the version skew policy
    (one minor version at a time, no downgrade, no kubelet newer than an apiserver) first;
    any finding refuses the run before anything changes. Then a snapshot of etcd on the
    first master (kubesalt_etcd_snapshot.save). Then each master's apiserver, one
    at a time, each waited for on /readyz and /version; then the rest of each master's
    control plane; then the workers in batches of upgrade:worker_batch: cordon, drain
    through the Eviction API (a drain that does not finish in upgrade:drain_timeout
    uncordons the node and stops the run with the reason), upgrade, wait Ready on the new
    kubelet, uncordon. Every step stops the run when it fails; run it again and it goes on
    from where the cluster is. Each step passes the inline pillar kubesalt_upgrade, the
    authorization without which a highstate refuses a version change. #}
{%- from "kubesalt/orch/params.jinja" import masters, state_queue with context %}
{%- set api = masters | first if masters else none %}
{%- set plan = salt["saltutil.runner"]("kubesalt_upgrade.plan", master=api) if api else none %}
{%- set ns = namespace(last="test: kubesalt-orch-upgrade-plan") %}

{%- macro chain(id) %}
    - failhard: True
    - require:
      - {{ ns.last }}
{%- set ns.last = "salt: " ~ id %}
{%- endmacro %}

{%- macro authorized(components=none) %}
    - pillar:
        kubesalt_upgrade:
          version: {{ plan.target | json }}
{%- if components %}
          components: {{ components | json }}
{%- endif %}
{%- endmacro %}

{%- macro on_api(id, function, node, timeout) %}

{{ id }}:
  salt.function:
    - name: {{ function }}
    - tgt: {{ api }}
    - arg:
      - {{ node }}
    - timeout: {{ timeout }}
{{- chain(id) }}
{%- endmacro %}

{%- if not api %}

kubesalt-orch-upgrade-refused:
  test.fail_without_changes:
    - name: pillar kubesalt:nodes has no master
{%- elif plan.problems %}

kubesalt-orch-upgrade-refused:
  test.fail_without_changes:
    - name: >-
        the upgrade{{ " to " ~ plan.target if plan.target else "" }} is refused and nothing
        was changed: {{ plan.problems | join("; ") }}
{%- elif plan.empty %}

kubesalt-orch-upgrade-nothing-to-do:
  test.succeed_without_changes:
    - name: every node runs Kubernetes {{ plan.target }}; nothing to do
{%- else %}

kubesalt-orch-upgrade-plan:
  test.succeed_without_changes:
    - name: {{ (["Kubernetes " ~ plan.target ~ ", node by node:",
                 api ~ ": an etcd snapshot first"] + plan.steps) | join("\n") | json }}
{%- set drain_timeout = plan.settings.drain_timeout + 120 %}
{%- set ready_timeout = plan.settings.ready_timeout + 60 %}

{#- A snapshot of etcd before anything changes (kept with its sha256 on that master). #}
kubesalt-orch-upgrade-etcd-snapshot:
  salt.function:
    - name: kubesalt_etcd_snapshot.save
    - tgt: {{ api }}
    - timeout: 360
{{- chain("kubesalt-orch-upgrade-etcd-snapshot") }}

{#- The apiservers first, one at a time: each serves again, on the new version, before the
    next restarts. #}
{%- for master in plan.apiservers %}
{%-   set id = "kubesalt-orch-upgrade-" ~ master ~ "-apiserver" %}

{{ id }}:
  salt.state:
    - tgt: {{ master }}
    - queue: {{ state_queue }}
    - sls: kubesalt.units
{{- authorized(["kube-apiserver"]) }}
{{- chain(id) }}

{{ id }}-ready:
  salt.function:
    - name: kubesalt_node.apiserver_ready
    - tgt: {{ master }}
    - timeout: {{ ready_timeout }}
{{- chain(id ~ "-ready") }}
{%- endfor %}

{#- Then the rest of each master (controller-manager, scheduler, kubectl; a master that is
    also a worker is drained for its kubelet). #}
{%- for master in plan.masters %}
{%-   set worker = "worker" in plan.roles[master] %}
{%-   if worker %}
{{- on_api("kubesalt-orch-upgrade-" ~ master ~ "-drained", "kubesalt_node.drain", master, drain_timeout) }}
{%-   endif %}
{%-   set id = "kubesalt-orch-upgrade-" ~ master ~ "-control-plane" %}

{{ id }}:
  salt.state:
    - tgt: {{ master }}
    - queue: {{ state_queue }}
    - highstate: True
{{- authorized() }}
{{- chain(id) }}
{%-   if worker %}
{{- on_api("kubesalt-orch-upgrade-" ~ master ~ "-ready", "kubesalt_node.ready", master, ready_timeout) }}
{{- on_api("kubesalt-orch-upgrade-" ~ master ~ "-uncordoned", "kubesalt_node.uncordon", master, 120) }}
{%-   endif %}
{%- endfor %}

{#- The workers, a batch at a time: drained, upgraded, Ready on the new kubelet, uncordoned. #}
{%- for batch in plan.batches %}
{%-   set number = loop.index %}
{%-   for worker in batch %}
{{- on_api("kubesalt-orch-upgrade-" ~ worker ~ "-drained", "kubesalt_node.drain", worker, drain_timeout) }}
{%-   endfor %}
{%-   set id = "kubesalt-orch-upgrade-batch-" ~ number %}

{{ id }}:
  salt.state:
    - tgt: {{ batch | join(",") }}
    - tgt_type: list
    - queue: {{ state_queue }}
    - highstate: True
{{- authorized() }}
{{- chain(id) }}
{%-   for worker in batch %}
{{- on_api("kubesalt-orch-upgrade-" ~ worker ~ "-ready", "kubesalt_node.ready", worker, ready_timeout) }}
{{- on_api("kubesalt-orch-upgrade-" ~ worker ~ "-uncordoned", "kubesalt_node.uncordon", worker, 120) }}
{%-   endfor %}
{%- endfor %}

{#- Nodes a stopped run left upgraded but cordoned. #}
{%- for node in plan.uncordon %}
{{- on_api("kubesalt-orch-upgrade-" ~ node ~ "-uncordoned", "kubesalt_node.uncordon", node, 120) }}
{%- endfor %}
{%- endif %}
