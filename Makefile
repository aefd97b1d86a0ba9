# hrpose_ros: the two commands are `make setup` and `make test` (see README.md).
# Every target runs the tools of .venv, which `make setup` creates.

VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
# Whole-suite limit in seconds (each test also has the pytest-timeout of pyproject.toml).
TEST_TIMEOUT ?= 3000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup test lint format bench-decode colcon-check demo

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

setup:  ## create .venv and install everything (idempotent; pins in requirements.txt)
	HRPOSE_VENV=$(VENV) scripts/setup_env.sh

test:  ## run the whole test suite (GPU tests skip without a GPU)
	timeout --kill-after=30 $(TEST_TIMEOUT) $(PYTHON) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint:  ## ruff check + format check
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:  ## ruff format + safe fixes
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

bench-decode:  ## median decode + PnP time, 1 object and 13 classes x 2 instances
	$(PYTHON) scripts/bench_decode.py

colcon-check:  ## colcon build of this package in a temporary workspace
	VENV=$(VENV) scripts/colcon_check.sh

# The README's run command: node + player on the bundled sample stream, ONNX Runtime on CPU.
# Until a trained model ships in models/ (issue 7), the demo runs the test fixture model
# (fitted to its own 6 frames) on its fixture stream, and says so.
SHIPPED_MODEL := models/hrpose_student.json
DEMO_MODEL    ?= $(if $(wildcard $(SHIPPED_MODEL)),$(SHIPPED_MODEL),test/data/fixture_model/fixture.json)
DEMO_STREAM   ?= $(if $(wildcard $(SHIPPED_MODEL)),models/sample_stream,test/data/fixture_stream)
DEMO_ARGS     ?=
demo:  ## run the node on the bundled sample stream; writes demo_out/ and prints accuracy
	@$(if $(wildcard $(SHIPPED_MODEL)),,echo "NOTE: no shipped model ($(SHIPPED_MODEL)) yet: demo on the test fixture model")
	$(PYTHON) -m hrpose_ros.ros.demo --model $(DEMO_MODEL) --stream $(DEMO_STREAM) --out demo_out $(DEMO_ARGS)
