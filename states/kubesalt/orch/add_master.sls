{#- Add a master: salt-run state.orchestrate kubesalt.orch.add_master pillar='{"target": "master-4"}'
    `target` must already be a master in pillar. Its etcd joins as a learner and is promoted
    once in sync (kubesalt_etcd.member_present); the other masters then get its service-account
    key. etcd must be healthy before and after. Then every worker's apiserver proxy sends
    connections to it too. #}
{%- from "kubesalt/orch/params.jinja" import masters, proxied, target, others, state_queue with context %}
{%- if target not in masters or not others %}

kubesalt-orch-refused:
  test.fail_without_changes:
    - name: >-
        pillar key target: expected a master of kubesalt:nodes that is not the only one
        (got {{ target or "nothing" }}; masters: {{ masters | join(", ") }})
{%- else %}

kubesalt-orch-etcd-healthy-before:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ others | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy

kubesalt-orch-new-master-applied:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ target }}
    - highstate: True
    - require:
      - salt: kubesalt-orch-etcd-healthy-before

kubesalt-orch-masters-pki-applied:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ others | join(",") }}
    - tgt_type: list
    - sls: kubesalt.pki
    - require:
      - salt: kubesalt-orch-new-master-applied

kubesalt-orch-etcd-healthy-after:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ (others + [target]) | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy
    - require:
      - salt: kubesalt-orch-masters-pki-applied

{%- if proxied %}

{#- Every worker's apiserver proxy gets the new list of masters: a reload, so that the
    connections to the masters that stay are kept. #}
kubesalt-orch-apiserver-proxies-updated:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ proxied | join(",") }}
    - tgt_type: list
    - sls: kubesalt.units
    - require:
      - salt: kubesalt-orch-etcd-healthy-after
{%- endif %}
{%- endif %}
