# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.PHONY: setup demo test lint bench clean

setup:
	bash scripts/setup_env.sh

demo: setup
	source scripts/env.sh && taskmem-demo $(DEMO_ARGS)

test: setup
	source scripts/env.sh && ruff check . && ruff format --check . && mypy && TASKMEM_REQUIRE_ROS=1 python -m pytest $(PYTEST_ARGS)

lint: setup
	source scripts/env.sh && ruff check . && ruff format --check . && mypy

bench: setup
	source scripts/env.sh && python benchmarks/bench_store.py && python benchmarks/bench_ingest.py

clean:
	rm -rf build install log build-colcon.log
