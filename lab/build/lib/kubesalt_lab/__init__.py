"""kubesalt-lab: a real multi-host kubesalt cluster on one machine.

Each node of the example pillar becomes a systemd-nspawn container (systemd and journald as
PID 1, a salt-minion as a unit) in its own network namespace on a lab bridge; a salt-master
on the host, listening only on the bridge, converges them from this repo.
"""
