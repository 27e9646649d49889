# Two entry points for a fresh machine: `make demo` and `make test`. Both create their own
# virtual environment (.venv) with torch pinned to 2.13.0. Where pip has no CPU wheel of it at
# hand, PyPI's Linux wheel is the CUDA build (GBs); take PyTorch's CPU index instead with
#   make demo TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
TORCH_INDEX ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint unit docker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_INDEX) torch==2.13.0 -e '.[dev]'
	touch $@

# A fixed run id: a second `make demo` resumes (and reuses) the same run instead of a new one.
demo: $(STAMP)
	$(BIN)/arcjobs run jobs/demo.yaml --run-id demo
	$(BIN)/arcjobs report demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# unit + integration on the host, the slurm tier against a real one-host Slurm cluster, then
# the docker tier against a real engine (scripts/ci-slurm.sh and scripts/ci-docker.sh install
# and start what is missing, and stop what they started afterwards).
# The images tier is opt-in: ARCJOBS_TEST_IMAGES=1 $(BIN)/pytest -m images
test: lint
	$(BIN)/pytest -m "not docker and not images and not gpu and not slurm"
	PYTHON=$(BIN)/python scripts/ci-slurm.sh
	PYTHON=$(BIN)/python scripts/ci-docker.sh

unit: $(STAMP)
	$(BIN)/pytest -m unit

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
