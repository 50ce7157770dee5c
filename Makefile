# The README's two commands: `make demo` and `make test`. Each sets the machine up first.
.PHONY: setup demo test bench clean

DEMO_OUT ?= demo-out

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python scripts/demo.py --out $(DEMO_OUT)

test: setup
	bash scripts/test.sh

bench: setup
	.venv/bin/python bench/bench_shard_read.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
