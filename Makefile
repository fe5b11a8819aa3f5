# Set-up and checks. `make test` and `make demo` install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := opensm infiniband-diags libumad2sim0 ibsim-utils mstflint libibverbs-dev ibverbs-providers bubblewrap
# What only the tests need: the tools that build rdma-core's pyverbs and its libraries;
# the Chromium the web view's browser tests drive (no download), and rsvg-convert, through
# which hcasim show --svg FILE.png renders.
TEST_DEBS := cmake ninja-build pkg-config libnl-3-dev libnl-route-3-dev libudev-dev \
	chromium chromium-driver librsvg2-bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
# The modules src/hcasim/native.py compiles with mypyc (its MODULES), as paths.
NATIVE_SOURCES := $(shell sed -n 's/^    "\(hcasim\.[a-z0-9_.]*\)",$$/\1/p' src/hcasim/native.py \
	| tr . / | sed 's|^|src/|;s|$$|.py|')

# The verbs preload (docs/crypto.md §11): libibverbs / libmlx5 programs on a lab host.
PRELOAD := build/preload/libhcaverbs.so
PRELOAD_SOURCES := preload/labwire.c preload/labwire.h preload/hcaverbs.c preload/hcaverbs.h \
	preload/datapath.c
# The PCI preload (docs/secure-host.md): the real mstflint / mstmcra by PCI address.
PCI_PRELOAD := build/preload/libhcapci.so
# The umad preload (docs/fabric.md §10): libibumad programs (OpenSM, osmtest, the diags).
UMAD_PRELOAD := build/preload/libhcaumad.so
RDMA_SHIM := build/preload/bin/rdma
# rdma-core's pyverbs and tests, from the PyPI sdist, built once (docs/crypto.md §11).
RDMA_VERSION := 59.0
RDMA := build/rdma
RDMA_STAMP := $(RDMA)/.built-$(RDMA_VERSION)

.PHONY: install debs test-debs apt-install preload rdma-core test lint demo bench clean

install: $(STAMP) $(NATIVE) preload

preload: $(PRELOAD) $(PCI_PRELOAD) $(UMAD_PRELOAD) $(RDMA_SHIM)

$(PRELOAD): $(PRELOAD_SOURCES) | debs
	mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
	  -o $@ preload/labwire.c preload/hcaverbs.c preload/datapath.c -lpthread

$(PCI_PRELOAD): preload/hcapci.c preload/labwire.c preload/labwire.h | debs
	mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
	  -o $@ preload/labwire.c preload/hcapci.c -ldl -lpthread

$(UMAD_PRELOAD): preload/hcaumad.c | debs
	mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
	  -o $@ preload/hcaumad.c -ldl -lpthread

# Beside it, the host's `rdma` (hcasim.cli.rdma), which `hcasim exec` puts first on PATH.
$(RDMA_SHIM): Makefile
	mkdir -p $(dir $@)
	printf '#!/bin/sh\n# iproute2 rdma on a lab host (hcasim.cli.rdma)\nPYTHONPATH="$(abspath src)$${PYTHONPATH:+:$$PYTHONPATH}" exec "$${HCASIM_PYTHON:-python3}" -m hcasim.cli.rdma "$$@"\n' > $@
	chmod 755 $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The MAD path compiled with mypyc (docs/fabric.md §8); without a C compiler the lab
# runs on the same modules as Python, only slower. The layouts' codecs are generated from
# hcasim.ib (the layouts and their class builder), so a change there rebuilds too. Then the byte code of every module, as
# pip does for an installed package: an editable install gets none, and where
# PYTHONDONTWRITEBYTECODE is set every tool would compile its modules at each start.
$(NATIVE): $(STAMP) src/hcasim/native.py $(NATIVE_SOURCES) $(wildcard src/hcasim/ib/*.py)
	HCASIM_PURE_PYTHON=1 $(BIN)/python -m hcasim.cli.native build \
	  || echo "hcasim: the mypyc build failed; the lab runs on its Python sources"
	$(BIN)/python -m compileall -q src/hcasim
	touch $(NATIVE)

# Debian packages for the real tools the lab is tested against (CI runs as root).
debs:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(DEBS)"

test-debs:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_DEBS)"

apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The pyverbs sdist carries the whole rdma-core tree: its libraries (pyverbs needs the
# matching libibverbs), pyverbs itself and tests/, all of one version. Cython < 3.1 builds it.
rdma-core: $(RDMA_STAMP)

$(RDMA_STAMP): | test-debs
	rm -rf $(RDMA) && mkdir -p $(RDMA)
	$(PYTHON) -m venv $(RDMA)/venv
	$(RDMA)/venv/bin/pip install -q 'cython>=3.0.12,<3.1'
	$(RDMA)/venv/bin/pip download -q --no-deps --no-binary :all: pyverbs==$(RDMA_VERSION) -d $(RDMA)
	tar -xzf $(RDMA)/pyverbs-$(RDMA_VERSION).tar.gz -C $(RDMA)
	cd $(RDMA)/pyverbs-$(RDMA_VERSION)/rdma-core && mkdir -p build && cd build \
	  && cmake -GNinja -DNO_MAN_PAGES=1 -DPYTHON_EXECUTABLE=$(abspath $(RDMA))/venv/bin/python .. >/dev/null \
	  && ninja >/dev/null
	touch $@

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: install debs test-debs rdma-core lint
	$(BIN)/python -m pytest -q tests

demo: install debs
	$(BIN)/python -m hcasim.cli.demo

bench: install debs test-debs rdma-core
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info src/hcasim/_native.manifest
	find src -name '*.so' -delete
