# The README's commands. `make demo` sets up and runs the main job; `make test` runs the tests;
# `make docs` builds the documentation site (docs/ -> site/), strictly, as CI does.
PYTHON ?= python3
VENV ?= .venv
SHARED ?= ../shared
BIN = $(VENV)/bin
OUT ?= out

.PHONY: setup docs export export-gridsample demo test test-arm test-pi test-trixie test-apt-opencv test-floor lint clean

$(BIN)/edgeface: setup.cfg setup.py pyproject.toml edge/inference/dcn/_sampler.c \
    edge/inference/_preprocess.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/edgeface

# The docs extra (mkdocs + material, pinned in setup.cfg), once per change of setup.cfg. A
# stamp rather than bin/mkdocs: `touch` on a file pip did not write would fake the install.
DOCS_STAMP = $(VENV)/.docs-extra
$(DOCS_STAMP): setup.cfg $(BIN)/edgeface
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

# --strict: a broken link or anchor, or a page missing from mkdocs.yml's nav, fails the build.
# The build needs no network (the theme's web font is fetched by the reader's browser). Not
# --quiet: it hides the warnings from the strict count, and a broken link would pass.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The V1 export that the target checks run on both sides (x86-64 host and aarch64 root).
MODEL = $(OUT)/featherface_v1.onnx
WEIGHTS = $(SHARED)/models/featherface/featherface_v1_mobilenet0.25_Final.pth
$(MODEL): $(BIN)/edgeface $(WEIGHTS)
	$(BIN)/edgeface export --arch v1 --force --weights $(WEIGHTS) -o $@

export: $(MODEL)

# The same model with DeformConv as GridSample, which ONNX Runtime < 1.25 runs (test-floor).
MODEL_GS = $(OUT)/featherface_v1_gridsample.onnx
$(MODEL_GS): $(BIN)/edgeface $(WEIGHTS)
	$(BIN)/edgeface export --arch v1 --dcn gridsample --force --weights $(WEIGHTS) -o $@

export-gridsample: $(MODEL_GS)

# Export the V1 checkpoint (verified against PyTorch), then run the device runtime on a
# folder of images as if it were a camera: JSON lines and an annotated video, no camera needed.
demo: setup
	$(BIN)/edgeface export --arch v1 --force \
	    --weights $(SHARED)/models/featherface/featherface_v1_mobilenet0.25_Final.pth \
	    -o $(OUT)/featherface_v1.onnx
	$(BIN)/edgeface run -m $(OUT)/featherface_v1.onnx \
	    --source $(SHARED)/datasets/widerface-val-native/images \
	    --json $(OUT)/run.jsonl --video $(OUT)/run.avi

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# Target checks (root: chroot, mounts, binfmt_misc; see tests/targets/README.md).
# test-arm: the device runtime on aarch64 Debian under qemu-user gives the x86-64 detections,
# and the suite passes there without torch. test-pi / test-trixie: on Raspberry Pi OS
# Bookworm's / Trixie's layering (apt numpy 1.24 / 2.2 + a --system-site-packages venv), the
# docs' install route keeps apt's numpy, and `edgeface run` and the torch-free suite work there.
# test-apt-opencv: natively on this Debian 12 host, apt's python3-opencv 4.6 and numpy 1.24 under
# the base install in a --system-site-packages venv; `edgeface run` and the torch-free suite.
test-arm: export
	MODEL=$(abspath $(MODEL)) HOST_VENV=$(abspath $(VENV)) EDGEFACE_SHARED=$(abspath $(SHARED)) \
	    bash tests/targets/arm_check.sh

test-pi: export
	MODEL=$(abspath $(MODEL)) HOST_VENV=$(abspath $(VENV)) EDGEFACE_SHARED=$(abspath $(SHARED)) \
	    bash tests/targets/pi_layering.sh bookworm

test-trixie: export
	MODEL=$(abspath $(MODEL)) HOST_VENV=$(abspath $(VENV)) EDGEFACE_SHARED=$(abspath $(SHARED)) \
	    bash tests/targets/pi_layering.sh trixie

test-apt-opencv: export
	MODEL=$(abspath $(MODEL)) HOST_VENV=$(abspath $(VENV)) EDGEFACE_SHARED=$(abspath $(SHARED)) \
	    bash tests/targets/apt_opencv.sh

# test-floor: the JetPack-6 floor (Python 3.10, numpy 1.21.6, OpenCV 4.5.5.64, ONNX Runtime
# 1.23.2) in an x86 venv: `run` end to end on the DeformConv export through the DCN fast path,
# exit 3 without it, the GridSample export, and the torch-free suite. No root.
test-floor: export export-gridsample
	MODEL=$(abspath $(MODEL)) MODEL_GS=$(abspath $(MODEL_GS)) HOST_VENV=$(abspath $(VENV)) \
	    EDGEFACE_SHARED=$(abspath $(SHARED)) bash tests/targets/floor_check.sh

clean:
	rm -rf $(OUT) .pytest_cache site
