# primeflow: the two commands of the README.
#   make demo   set up what is missing, build, run the main job
#   make test   set up what is missing (with the Python interop tools), build, check that
#               the core builds and its unit tests pass without the scripting layer,
#               lint (clippy, warnings are errors), run every test
# Both are idempotent; set-up is ./setup.sh.

CARGO ?= cargo
BIN := target/release/primeflow
DEMO_OUT ?= out/demo

.PHONY: demo test setup setup-python build bench notebooks clean-out

setup:
	./setup.sh

setup-python:
	./setup.sh --python

build: setup
	$(CARGO) build --release

demo: build
	$(BIN) run scripts/quickstart.rhai --set out=$(DEMO_OUT)

test: setup-python
	$(CARGO) build --release
	$(CARGO) check --release --no-default-features
	OMP_NUM_THREADS=1 $(CARGO) test --release --no-default-features --lib -- --test-threads=2
	$(CARGO) clippy --release --all-targets -- -D warnings
	OMP_NUM_THREADS=1 $(CARGO) test --release -- --test-threads=2

bench: setup-python
	$(CARGO) build --release
	./bench/run.sh

notebooks: build
	./notebooks/run.sh

clean-out:
	rm -rf out
