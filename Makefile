# Two commands matter: `make run` serves the app, `make test` runs the suite.
# Both create .venv and install the pinned requirements when they are missing or changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: run worker test test-slow lint bench bench-quick models clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	$(PY) -m cnn_core.service.settings
	$(PY) -m streamlit run app.py --server.port $(PORT)

# A training worker for CNN_REDIS_URL (README, "Workshops on several machines"); WORKER_ARGS e.g. --workers 2.
worker: $(VENV)/.runtime
	@test -n "$$CNN_REDIS_URL" || { echo "Set CNN_REDIS_URL, e.g. CNN_REDIS_URL=redis://localhost:6379/0 make worker"; exit 2; }
	$(PY) -m cnn_core.service.rq_worker $(WORKER_ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check .

test: $(VENV)/.dev lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.dev
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(VENV)/.dev
	$(PY) -m bench.run --quick $(BENCH_ARGS)

models: $(VENV)/.runtime
	$(PY) -m scripts.train_default_models

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
