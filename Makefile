# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mixedmodels demo

# In order, each must pass: the linter, the import-layer contracts ([tool.importlinter] in
# pyproject.toml; --no-cache keeps .import_linter_cache out of the tree), the documentation site
# (mkdocs.yml: the guides and the API reference from the docstrings, warnings are errors; built
# outside the tree), then the tests. make stops at
# the first non-zero exit, pytest's 5 ("no tests collected") included.
# One BLAS thread for tests: they time nothing, and oversubscribed OpenBLAS threads on a
# shared machine slow dense factorizations by 10-30x.
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) src/*.egg-info
