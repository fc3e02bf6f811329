# dockernetd — `make test` is what CI runs (.ci/run); every target installs what it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Debian's interpreter: a systemd unit can reach it (pyenv's lives under /root).
SYSTEM_PYTHON := $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
APT_PACKAGES := gcc libc6-dev python3-dev python3-venv pkg-config libsystemd-dev iptables iproute2 \
                iputils-ping systemd podman runc busybox-static docker.io nftables etcd-server
STAMP := $(VENV)/.installed
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: install apt-deps run demo lint test unit integration clean systemd-units install-systemd bench cni-plugin

install: apt-deps $(STAMP)

# policy-rc.d (exit 101) while installing: no package may start a service on this machine
# (podman's postinst would start podman.socket).
apt-deps:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=yes; \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d > /dev/null; \
	    $(SUDO) chmod 0755 /usr/sbin/policy-rc.d; fi; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; [ -z "$$policy" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check wheel
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# pip writes no bytecode under PYTHONDONTWRITEBYTECODE, and a read-only checkout under
	@# systemd cannot: without this, every start compiles trio, pyroute2... (+0.5 s to READY)
	$(PY) -m compileall -q -j0 $(VENV)/lib dockernetd
	touch $@

# The daemon in the foreground with default flags. It configures the network of
# the namespace it runs in, like dockerd: on a machine you care about, run it as
# `sudo unshare -n make run`, or try `make demo`.
run: install
	SETUPTOOLS_USE_DISTUTILS=stdlib $(VENV)/bin/dockernetd

demo: install
	bash contrib/demo.sh

# The units for this checkout (its .venv), in build/systemd/.
systemd-units: install
	bash contrib/systemd/render.sh . build/systemd

# The CNI plugin launcher for this checkout, in build/cni/dockernetd (see the README).
cni-plugin: install
	bash contrib/cni/render.sh . build/cni

# Installs the units on this machine (it does not start them): then
# `systemctl enable --now dockernetd.socket`. Flags go in /etc/default/dockernetd.
install-systemd: systemd-units
	install -m 0644 build/systemd/dockernetd.service build/systemd/dockernetd.socket /etc/systemd/system/
	test -e /etc/default/dockernetd || install -m 0644 contrib/systemd/dockernetd.default /etc/default/dockernetd
	systemctl daemon-reload

lint: install
	$(VENV)/bin/ruff check dockernetd tests integration bench
	$(VENV)/bin/ruff format --check dockernetd tests integration bench
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest -q tests

integration: install
	$(PY) -m pytest -q integration

test: lint
	$(PY) -m pytest tests integration

# Benchmarks (root: each daemon runs in a throwaway namespace); tables on stdout,
# JSON in bench/results/. They never fail on a number.
# socat is the proxy benchmark's baseline.
bench: EXTRA_APT_PACKAGES := socat
bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache
