# Two entry points for a newcomer: `make test` and `make demo`. Both bootstrap what they need.
# Python packages come from the hash-checked lock in requirements/ (never "latest"); `make lock` is the only
# step that looks at newer releases.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := requirements/dev.txt
NODE_LOCK := requirements/node.txt
COMPILE = $(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links --no-emit-index-url

.PHONY: test demo lint unit deps system-deps lock lockcheck clean image image-clean bench-add

# A changed lock rebuilds the venv from nothing, so no version outside the lock can stay behind.
$(STAMP): $(LOCK) pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Every installed distribution is the locked version, and the set is consistent.
lockcheck: $(STAMP)
	$(PY) -m pip check
	$(PY) scripts/check_lock.py $(LOCK)

# Refresh both locks within pyproject's ranges (UPGRADE="--upgrade-package moto" bumps one package only).
# The node lock is constrained by the dev lock, so a package common to both has one version.
UPGRADE ?= --upgrade
lock: $(STAMP)
	$(COMPILE) $(UPGRADE) --extra localcloud --extra dev -o $(LOCK) pyproject.toml
	$(COMPILE) $(UPGRADE) -c $(LOCK) -o $(NODE_LOCK) pyproject.toml

system-deps:
	./scripts/install-system-deps.sh

deps: lockcheck system-deps

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

demo: deps
	$(VENV)/bin/vpccni demo $(DEMO_ARGS)

# The node image, offline: Debian root file systems made here with mmdebstrap, wheels from the node lock,
# podman with a private configuration (scripts/private_podman.py). Needs root; IMAGE_ARGS="--save x.tar".
image: $(STAMP)
	$(PY) -m scripts.build_image $(IMAGE_ARGS)

# ADD latency of the plugin a node runs: the image's payload, extracted, installed on an emulated node.
# Needs root; BENCH_ARGS="--json" or "--sequential 100".
bench-add: image
	$(PY) -m scripts.extract_payload --out build/payload
	$(VENV)/bin/vpccni bench add --payload build/payload $(BENCH_ARGS)

# The image's podman storage (base images included) and the downloaded wheels.
image-clean:
	rm -rf $${VPCCNI_PODMAN_ROOT:-/var/tmp/vpccni-podman} build/image

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
