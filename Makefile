# kubesalt developer entry points. Run as root on Debian 12.
#   make lab    the main job: a real multi-host cluster on this machine (make lab-down removes it)
#   make test   install what the suite needs (apt + .venv), lint, run every tier
#   make setup  only the installation part
#   make lint   ruff (check + format)
#   make bench  benchmarks: print a table, write bench/results/*.json
#   make conformance  every [Conformance] spec of Kubernetes' own suite against the lab
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV ?= .venv
PYTEST_ARGS ?=
APT_PACKAGES := python3-venv etcd-server etcd-client systemd-container debootstrap bird2 openssl \
                golang-go gcc libc6-dev libseccomp-dev pkg-config \
                iproute2 busybox-static docker-registry haproxy

.PHONY: setup apt venv test lint clean

setup: apt venv

# Installs only what is missing, so a second `make setup` is quick and offline.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "setup: apt packages present"; fi

venv: $(VENV)/.installed

# kubesalt (the product) and, beside it, the lab (a development tool, not in kubesalt's wheel).
# Every wheel they need is kept in the lab's cache: a new venv (a fresh clone, CI) installs
# from it without the package index in seconds; when it lacks something (changed pins, a
# cold cache) the index fills it first.
# The lab's cache (kubesalt_lab.config.DEFAULT_CACHE; the venv that could ask it comes after).
LAB_CACHE ?= $(or $(KUBESALT_LAB_CACHE),/var/cache/kubesalt-lab)
WHEELS := $(LAB_CACHE)/wheels
PIP_FROM_WHEELS = $(VENV)/bin/pip install -q --no-index --find-links $(WHEELS) \
                  -c requirements/constraints.txt setuptools wheel -e '.[test]' -e lab
$(VENV)/.installed: setup.cfg pyproject.toml lab/pyproject.toml requirements/constraints.txt
	@echo "setup: creating $(VENV) with pinned salt"
	$(PYTHON) -m venv $(VENV)
	@$(PIP_FROM_WHEELS) 2>/dev/null || { \
	  echo "setup: filling $(WHEELS) from the package index (about a minute)"; \
	  $(VENV)/bin/pip wheel -q -w $(WHEELS) -c requirements/constraints.txt \
	    setuptools wheel '.[test]' ./lab && \
	  rm -rf $(WHEELS)/kubesalt-*.whl $(WHEELS)/kubesalt_lab-*.whl build lab/build && \
	  $(PIP_FROM_WHEELS); }
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The lab's cache first, in the foreground with its progress: from nothing, every component
# built from its source, the hosts' rootfs and the conformance suite; with a warm cache, a
# few seconds. Then every tier. PREPARE=0 skips it (tests that need the cache then fill it
# in the background themselves, e.g. `make test PREPARE=0 PYTEST_ARGS=tests/unit`).
PREPARE ?= 1
test: setup lint
ifeq ($(PREPARE),1)
	$(VENV)/bin/kubesalt-lab prepare
	KUBESALT_TEST_PREPARE=0 $(VENV)/bin/python -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)
else
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
endif

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

.PHONY: bench
bench: setup
	$(VENV)/bin/python bench/validate.py
	$(VENV)/bin/python bench/pki.py
	$(VENV)/bin/python bench/etcd.py
	$(VENV)/bin/python bench/build.py
	$(VENV)/bin/python bench/lab.py
	$(VENV)/bin/python bench/lab_etcd.py
	$(VENV)/bin/python bench/lab_highstate.py
	$(VENV)/bin/python bench/bgp.py
	$(VENV)/bin/python bench/ingress.py
	$(VENV)/bin/python bench/hardening.py
	$(VENV)/bin/python bench/heal.py
	$(VENV)/bin/python bench/workers.py
	$(VENV)/bin/python bench/failover.py
	$(VENV)/bin/python bench/upgrade.py
	$(VENV)/bin/python bench/etcd_restore.py

# Every [Conformance] spec against the lab (brought up and applied when not running); the
# result table goes to bench/results/conformance.json.
.PHONY: conformance
conformance: setup
	$(VENV)/bin/python bench/conformance.py

# The lab: one systemd-nspawn host per node of pillar/kubesalt, converged by a real salt-master.
.PHONY: lab lab-down
lab: setup
	$(VENV)/bin/kubesalt-lab up
	$(VENV)/bin/kubesalt-lab apply
	$(VENV)/bin/kubesalt-lab status

lab-down: venv
	$(VENV)/bin/kubesalt-lab down
