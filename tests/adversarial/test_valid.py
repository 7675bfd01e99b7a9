"""The valid QLLM-style corpus (tests/adversarial/valid/) is accepted, and each accepted graph equals
the eager function (values and gradients) on held-out inputs, including production batches and
[B, T, N] trainer tensors. Also the conformance test: VDN is accepted for every registered task."""

from __future__ import annotations

import pytest

from adversarial_corpus import HERE, VALID, header


def _representative() -> list[str]:
    from tfcaf.tasks.registry import TASKS

    names = ["matrix_climbing"]
    igm = [n for n, t in TASKS.items() if t.card.requires_igm]
    if igm:
        names.append(igm[0])
        names.append(max(igm, key=lambda n: TASKS[n].card.n_agents))
    return list(dict.fromkeys(names))


def _pairs() -> list[tuple[str, str]]:
    from tfcaf.tasks.registry import TASKS

    pairs = []
    for path in VALID:
        spec = header(path)["tasks"]
        if path.name == "vdn.py":
            tasks = list(TASKS)
        elif spec == "*":
            tasks = _representative()
        else:
            tasks = [t.strip() for t in spec.split(",") if t.strip() in TASKS]
        pairs += [(path.name, t) for t in tasks]
    return pairs


PAIRS = _pairs()


def _eager(text: str):
    """Our own corpus is trusted: load it in-process through the same gates, to compare with the graph."""
    from tfcaf.sandbox.astgate import check_module
    from tfcaf.sandbox.namespace import load_candidate
    from tfcaf.sandbox.textgate import extract_source

    return load_candidate(check_module(extract_source(text)))


def test_valid_corpus_headers() -> None:
    assert len(VALID) >= 30
    assert all(header(p).get("expect") == "accepted" for p in VALID)
    tasks = {t for n, t in PAIRS}
    assert {"matrix_climbing", "smac_3m", "mpe_simple_spread", "lbf_2s-8x8-2p-2f-coop"} <= tasks
    texts = {p.name: p.read_text(encoding="utf-8") for p in VALID}
    # the idioms issue 12 says must not be bounced for style
    no_import = [n for n, t in texts.items() if not any(line.startswith(("import ", "from ")) for line in t.splitlines())]
    assert any("lbf" in header(HERE / "valid" / n)["tasks"] for n in no_import)
    assert any("def _" in t for t in texts.values()) and any("for _ in" in t for t in texts.values())
    assert any(', f"' in t for t in texts.values()) and any("einsum" in t for t in texts.values())


@pytest.mark.parametrize("name,task", PAIRS, ids=[f"{n.split('.')[0]}-{t}" for n, t in PAIRS])
def test_valid_function_is_accepted_and_graph_matches(name, task, valid_vetter) -> None:
    import torch

    from tfcaf.sandbox.graph import graph_digest, load_graph
    from tfcaf.tasks.registry import get_card
    from adversarial_corpus import HERE

    card = get_card(task)
    text = (HERE / "valid" / name).read_text(encoding="utf-8")
    verdict = valid_vetter.vet(text, card)
    assert verdict.accepted, verdict.summary()
    assert verdict.status == "ok" and verdict.graph is not None
    assert verdict.metrics["graph_sha256"] == graph_digest(verdict.graph)
    for key in ("vdn_distance", "mono_min_grad", "production_ms", "state_dependence"):
        assert key in verdict.metrics

    fn, graph = _eager(text), load_graph(verdict.graph)
    gen = torch.Generator().manual_seed(99)
    low = torch.tensor(card.state_low).clamp(-1e3, 1e3)
    high = torch.tensor(card.state_high).clamp(-1e3, 1e3)
    for b in (1, 5, 3200):
        q = (torch.randn(b, card.n_agents, generator=gen) * 20).requires_grad_(True)
        s = low + torch.rand(b, card.state_dim, generator=gen) * (high - low)
        eager, compiled = fn(q, s), graph(q, s)
        assert compiled.shape == (b, 1) and compiled.dtype == torch.float32
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-3)
        (g_eager,) = torch.autograd.grad(eager.sum(), q)
        (g_graph,) = torch.autograd.grad(graph(q, s).sum(), q)
        torch.testing.assert_close(g_graph, g_eager, rtol=1e-4, atol=1e-4)
    q3 = torch.randn(32, 100, card.n_agents, generator=gen)
    s3 = low + torch.rand(32, 100, card.state_dim, generator=gen) * (high - low)
    out3 = graph(q3, s3)
    assert out3.shape == (32, 100, 1)
    torch.testing.assert_close(out3.reshape(-1, 1), fn(q3.reshape(-1, card.n_agents), s3.reshape(-1, card.state_dim)), rtol=1e-4, atol=1e-3)
