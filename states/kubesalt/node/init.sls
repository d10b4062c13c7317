{#- What every cluster node gets, whatever its roles. #}
include:
  - .config
