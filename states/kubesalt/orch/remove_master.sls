{#- Remove a master: salt-run state.orchestrate kubesalt.orch.remove_master pillar='{"target": "master-3"}'
    Refused (by kubesalt_etcd.member_absent, before any change) when the healthy members left
    would not be a majority of the members now, or when it is the last one. On the target,
    etcd is stopped and its data dir moved aside. Take the node out of pillar (or its master
    role) too, or a later highstate joins it back. Its minion must answer: for a dead
    master use kubesalt.orch.replace_master. #}
{%- from "kubesalt/orch/params.jinja" import masters, proxied, target, others, state_queue with context %}
{%- set remaining = masters | reject("equalto", target) | list %}
{%- if not target or not remaining %}

kubesalt-orch-refused:
  test.fail_without_changes:
    - name: >-
        pillar key target: expected the minion id of a master to remove, other masters
        remaining (got {{ target or "nothing" }}; masters: {{ masters | join(", ") }})
{%- else %}

kubesalt-orch-etcd-healthy-before:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ remaining | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy

{%- if proxied %}

{#- Every worker's apiserver proxy gets the new list of masters: a reload, so that the
    connections to the masters that stay are kept. #}
kubesalt-orch-apiserver-proxies-updated:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ proxied | join(",") }}
    - tgt_type: list
    - sls: kubesalt.units
    # The master leaves every proxy before pillar loses it (its apiserver is about to lose
    # its etcd member anyway).
    - pillar:
        kubesalt:
          apiserver_proxy:
            drain: {{ ([target] + salt["pillar.get"]("kubesalt:apiserver_proxy:drain", [])) | json }}
    - require:
      - salt: kubesalt-orch-etcd-healthy-before
{%- endif %}

kubesalt-orch-member-retired:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ target }}
    - sls: kubesalt.etcd.retired
    - require:
      - salt: kubesalt-orch-etcd-healthy-before

kubesalt-orch-etcd-healthy-after:
  salt.state:
    - queue: {{ state_queue }}
    - tgt: {{ remaining | join(",") }}
    - tgt_type: list
    - sls: kubesalt.etcd.healthy
    - require:
      - salt: kubesalt-orch-member-retired
{%- endif %}
