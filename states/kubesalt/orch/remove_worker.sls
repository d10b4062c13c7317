{#- Remove a worker: take it out of pillar kubesalt:nodes first, then
      salt-run state.orchestrate kubesalt.orch.remove_worker pillar='{"target": "worker-3"}'
    Refused before any change for a node with the master role (kubesalt.orch.remove_master)
    or one still in pillar with its roles. On the first master: the worker is drained
    through the Eviction API (PodDisruptionBudgets honoured; a drain that does not finish
    stops the run and uncordons it), then tainted NoExecute until the pods a drain leaves
    (DaemonSets') are gone; on the worker, every worker unit is stopped and disabled (its
    kubelet must not register the Node again; its minion must answer); then the Node is
    deleted and its Calico IP blocks and block affinities released; last, the routers'
    highstate renders BIRD without it, so its BGP session ends. Each step stops the run
    when it fails; run it again to go on.
    A worker whose minion does not answer is refused unless its Node is NotReady and
    pillar says force: true (its host is down for good): then its pods are deleted without
    its kubelet (kubesalt_node.fence, the node.kubernetes.io/out-of-service taint) instead
    of the drain, the evacuation and the retirement; the rest is the same. #}
{%- from "kubesalt/orch/params.jinja" import masters, nodes, target, state_queue with context %}
{%- set api = masters | first if masters else none %}
{%- set decided = salt["saltutil.runner"]("kubesalt_node.removal_plan", target=target, nodes=nodes,
                                          master=api, force=salt["pillar.get"]("force", False))
                  if api else {"refusal": "pillar kubesalt:nodes has no master", "dead": False} %}
{%- set routers = [] %}
{%- for id, node in nodes | dictsort if "router" in node.get("roles", []) %}{% do routers.append(id) %}{% endfor %}
{%- if decided.refusal %}

kubesalt-orch-remove-worker-refused:
  test.fail_without_changes:
    - name: >-
        {{ decided.refusal }}; nothing was changed
{%- elif decided.dead %}

kubesalt-orch-remove-worker-fenced:
  salt.function:
    - name: kubesalt_node.fence
    - tgt: {{ api }}
    - arg:
      - {{ target }}
    - timeout: 900
    - failhard: True
{%- else %}

kubesalt-orch-remove-worker-drained:
  salt.function:
    - name: kubesalt_node.drain
    - tgt: {{ api }}
    - arg:
      - {{ target }}
    - timeout: 900
    - failhard: True

kubesalt-orch-remove-worker-evacuated:
  salt.function:
    - name: kubesalt_node.evacuate
    - tgt: {{ api }}
    - arg:
      - {{ target }}
    - timeout: 900
    - failhard: True
    - require:
      - salt: kubesalt-orch-remove-worker-drained

kubesalt-orch-remove-worker-units-retired:
  salt.function:
    - name: kubesalt_unit.retire
    - tgt: {{ target }}
    - arg:
      - worker
    - failhard: True
    - require:
      - salt: kubesalt-orch-remove-worker-evacuated

{%- endif %}
{%- if not decided.refusal %}

kubesalt-orch-remove-worker-node-deleted:
  salt.function:
    - name: kubesalt_node.delete
    - tgt: {{ api }}
    - arg:
      - {{ target }}
    - failhard: True
    - require:
      - salt: kubesalt-orch-remove-worker-{{ "fenced" if decided.dead else "units-retired" }}

kubesalt-orch-remove-worker-ipam-released:
  salt.function:
    - name: kubesalt_node.release_ipam
    - tgt: {{ api }}
    - arg:
      - {{ target }}
    - timeout: 300
    - failhard: True
    - require:
      - salt: kubesalt-orch-remove-worker-node-deleted
{%- if routers %}

{#- The routers' BIRD, rendered from pillar without the worker: its session ends. #}
kubesalt-orch-remove-worker-routers-updated:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ routers | join(",") }}
    - tgt_type: list
    - highstate: True
    - failhard: True
    - require:
      - salt: kubesalt-orch-remove-worker-ipam-released
{%- endif %}
{%- endif %}
