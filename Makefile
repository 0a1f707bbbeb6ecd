# The README's commands. `make demo` sets up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
SHARED ?= ../shared
BIN = $(VENV)/bin
OUT ?= out

.PHONY: setup demo test lint clean

$(BIN)/edgeface: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/edgeface

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

clean:
	rm -rf $(OUT) .pytest_cache
