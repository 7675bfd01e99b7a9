"""Layer 4 alone: the worker's OS limits hold even for code that got past layers 1-3.

A subprocess applies exactly what a sandbox child applies (network namespace, rlimits, no new
privileges, uid drop) and then tries, with plain Python, to fork, write a file, reach a local socket
and allocate memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

from tfcaf.sandbox.vetting import scrubbed_env

SCRIPT = textwrap.dedent('''
    import json, os, signal, socket, sys
    import torch
    from tfcaf.sandbox.worker import _isolate_network, apply_limits
    net = _isolate_network()
    held = apply_limits({"cpu_s": 20, "memory_mb": 512})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    out = {"net": net, "held": held, "env_keys": sorted(os.environ)}
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        out["fork"] = "allowed"
    except OSError:
        out["fork"] = "blocked"
    try:
        with open(sys.argv[1], "w") as f:
            f.write("x" * 100)
        out["write"] = "allowed"
    except OSError:
        out["write"] = "blocked"
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(("127.0.0.1", int(sys.argv[2])))  # numeric: no lazy codec import
        sock.close()
        out["connect"] = "allowed"
    except OSError:
        out["connect"] = "blocked"
    try:
        junk = bytearray(3 * 1024 ** 3)
        out["memory"] = "allowed"
    except MemoryError:
        out["memory"] = "blocked"
    print(json.dumps(out))
''')


def test_limits_hold_for_plain_python(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    target_dir = tmp_path / "private"
    target_dir.mkdir(mode=0o755)
    target = target_dir / "pwned.txt"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(target), str(port)], env=scrubbed_env(),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "OPENAI_API_KEY" not in out["env_keys"]
    if out["held"]["nproc"]:  # false only for root that could not drop to 'nobody' (root ignores RLIMIT_NPROC)
        assert out["fork"] == "blocked"
    if os.getuid() != 0:
        assert out["held"]["nproc"]
    assert out["memory"] == "blocked"
    assert out["write"] == "blocked" or target.stat().st_size == 0
    assert not target.exists() or target.read_text() == ""
    if out["net"]:
        assert out["connect"] == "blocked"
    if os.getuid() == 0:
        assert out["held"]["uid"] == 65534
