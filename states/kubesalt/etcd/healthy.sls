{#- A check, no change: every voting etcd member answers with a leader and nobody is still
    joining. The orchestrations in kubesalt/orch run it between membership steps. #}
kubesalt-etcd-healthy:
  kubesalt_etcd.healthy:
    - name: etcd
    - timeout: 120
