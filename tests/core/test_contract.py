import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tfcaf.contract import ContractError, check_inputs, check_output, mix_episodes, validated


def vdn(q, s):
    return q.sum(-1, keepdim=True)


def test_validated_accepts_vdn():
    out = validated(vdn, n_agents=3, state_dim=4)(torch.ones(5, 3), torch.zeros(5, 4))
    assert out.shape == (5, 1) and float(out[0]) == 3.0


@pytest.mark.parametrize("q_shape,s_shape,n,s", [((5, 3), (4, 4), 3, 4), ((5, 3, 1), (5, 4), None, None),
                                                 ((5, 2), (5, 4), 3, 4), ((5, 3), (5, 7), 3, 4)])
def test_check_inputs_rejects_bad_shapes(q_shape, s_shape, n, s):
    with pytest.raises(ContractError):
        check_inputs(torch.zeros(q_shape), torch.zeros(s_shape), n, s)


def test_check_inputs_rejects_mixed_dtypes_and_ints():
    with pytest.raises(ContractError):
        check_inputs(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ContractError):
        check_inputs(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.int64))


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(5, 2), torch.zeros(5, 1, dtype=torch.float64),
                                 torch.full((5, 1), float("nan")), 3.0])
def test_check_output_rejects(bad):
    with pytest.raises(ContractError):
        check_output(bad, torch.zeros(5, 3))


@given(b=st.integers(1, 6), t=st.integers(1, 5), n=st.integers(1, 5), s=st.integers(1, 7))
def test_mix_episodes_matches_per_step(b, t, n, s):
    q = torch.randn(b, t, n)
    state = torch.randn(b, t, s)
    fn = lambda q, s: (q * torch.softmax(s[:, :1].expand(-1, q.shape[1]), -1)).sum(-1, keepdim=True)  # noqa: E731
    out = mix_episodes(fn, q, state)
    assert out.shape == (b, t, 1)
    assert torch.allclose(out[:, -1], fn(q[:, -1], state[:, -1]))
