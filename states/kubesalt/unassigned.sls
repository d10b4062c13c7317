{#- A minion that pillar does not place in the cluster gets this notice and nothing else. #}
kubesalt-node-unassigned:
  kubesalt.unassigned:
    - name: {{ opts["id"] }}
