# The example lab cluster is the embedded default: every minion gets it, and kubesalt itself
# decides from kubesalt:nodes which minions are part of it. Replace `kubesalt` with your
# cluster's pillar file (start from pillar.example).
base:
  '*':
    - kubesalt
