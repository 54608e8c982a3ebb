.PHONY: setup demo test lint bench
setup:
	bash scripts/dev setup
demo:
	bash scripts/dev demo
test:
	bash scripts/dev test
lint: setup
	.venv/bin/ruff check src tests bench tools
	.venv/bin/mypy
bench: setup
	.venv/bin/python bench/seccomp_bench.py
	.venv/bin/python bench/run_bench.py
