# Two commands do all the set-up: `make repro` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install repro test lint bench bench-megc clean

install: $(STAMP)

# Re-install when the dependencies change; the editable install follows the code itself.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[all,test]'
	@touch $@

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@echo
	@echo "Outputs (see README.md, 'Outputs'):"
	@echo "  cache/sample/                   synthetic CASME II-layout sample"
	@echo "  cache/manifest/sample/          manifest.csv, report.md, problems.csv, counts.json"
	@echo "  cache/faces/sample.zarr         aligned, equalised face crops per clip (zarr v3)"
	@echo "  cache/modalities/sample.zarr    MESTI, dynamic images, flow, active image per clip (zarr v3)"
	@echo "  cache/sequences/sample.zarr     sampled grey frames, 68 landmarks, flows per clip (zarr v3)"
	@echo "  docs/sample_mesti.png           one clip drawn by mesti show"
	@echo "  cache/train/sample/             MEGANet LOSO run: metrics.json, epochs.csv, predictions.csv, figures"
	@echo "  cache/train/sample-fdp, -mol/   FDP and MOL LOSO runs; cache/train/models.md compares the three"
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Speed and memory against the targets (bench/run.py); e.g. BENCH_ARGS="--clips 4 --frames 12".
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# A MEGC 2019-shaped synthetic composite (442 clips, ~6 GB generated once under bench/data/):
# preprocessing, then one MEGANet epoch per LOSO fold; e.g. MEGC_ARGS="--folds 4". Not in CI.
bench-megc: $(STAMP)
	$(BIN)/python -m bench.megc $(MEGC_ARGS)

clean:
	rm -rf cache/sample cache/manifest cache/faces cache/modalities cache/train .pytest_cache .ruff_cache
