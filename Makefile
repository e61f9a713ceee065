# Two commands for a new user: `make demo` and `make test`.
# Set-up is idempotent: it reinstalls only when pyproject.toml or this Makefile change.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.imgsynth-installed

.PHONY: setup demo test bench clean reference

setup: $(STAMP)

# Exactly one OpenCV gets installed: opencv-python-headless (albumentations' choice).
# trdg 1.8.0 pins Pillow/OpenCV/arabic-reshaper versions that break the rest of the stack;
# its runtime modules come from the [ocr] extra, so it is installed without its pins.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	$(BIN)/python -m pip install --quiet --no-deps "trdg==1.8.0"
	$(BIN)/python -c "import imgsynth, cv2, albumentations; print('imgsynth', imgsynth.__version__, 'ready')"
	touch $(STAMP)

demo: setup
	rm -rf out/quickstart
	$(BIN)/imgsynth run recipes/quickstart.yaml --out out/quickstart
	@echo "open out/quickstart/preview.png"

test: setup
	$(BIN)/python -m pytest

# Peers measured side by side. flip-data is GPL: it lives in benchmarks/.peers, which only
# the benchmarks put on sys.path; the package never imports it.
bench: setup
	test -d benchmarks/.peers/flip || $(BIN)/python -m pip install --quiet --no-deps --target benchmarks/.peers flip-data==0.2.1 jinja2
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

reference: setup
	$(BIN)/imgsynth reference > docs/recipe-reference.md

clean:
	rm -rf out .pytest_cache
