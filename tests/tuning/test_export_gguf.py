"""The llama.cpp LoRA GGUF writer on hand-made adapters (numpy only, no model load): metadata, names,
GGUF shapes, the Q/K row permutation of lora_b, and refusals. The served-distribution check against
peft on the real SmolLM2 is in test_serve_llamacpp.py."""

from __future__ import annotations

import json

import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
pytest.importorskip("safetensors")

from tfcaf.errors import UsageError  # noqa: E402
from tfcaf.generator.tuning.export import export_lora_gguf, gguf_tensor_name  # noqa: E402
from tfcaf.generator.tuning.model import permute  # noqa: E402

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS = 16, 4, 2, 24, 2
HEAD_DIM = HIDDEN // HEADS
SHAPES = {"self_attn.q_proj": (HIDDEN, HIDDEN), "self_attn.k_proj": (KV_HEADS * HEAD_DIM, HIDDEN),
          "self_attn.v_proj": (KV_HEADS * HEAD_DIM, HIDDEN), "self_attn.o_proj": (HIDDEN, HIDDEN),
          "mlp.gate_proj": (FFN, HIDDEN), "mlp.up_proj": (FFN, HIDDEN), "mlp.down_proj": (HIDDEN, FFN)}
"""torch [out, in] of each projection of the fake base."""
KIND = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def _base_gguf(path, hidden=HIDDEN):
    """A tiny llama GGUF with the metadata gguf_config reads and zero weights of the projection shapes."""
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_block_count(LAYERS)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_context_length(128)
    w.add_vocab_size(32)
    for layer in range(LAYERS):
        for module, (out, inp) in SHAPES.items():
            in_dim = hidden if inp == HIDDEN else inp
            out_dim = hidden if out == HIDDEN else out
            w.add_tensor(f"blk.{layer}.{KIND[module]}.weight", np.zeros((out_dim, in_dim), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _adapter(folder, rank=4, alpha=8, seed=0, **config):
    """A peft-style adapter folder: adapter_config.json + adapter_model.safetensors with random A and B."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        for module, (out, inp) in SHAPES.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal((rank, inp)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal((out, rank)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "bias": "none", "use_dora": False, "use_rslora": False,
           "rank_pattern": {}, "alpha_pattern": {}, "target_modules": [m.split(".")[1] for m in SHAPES]} | config
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return tensors


def _field(reader, key):
    return reader.fields[key].contents()


def test_adapter_gguf_has_llama_cpp_metadata_names_shapes_and_permuted_qk_rows(tmp_path):
    base = _base_gguf(tmp_path / "base.gguf")
    tensors = _adapter(tmp_path / "adapter", rank=4, alpha=8)
    info = export_lora_gguf(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    assert info["rank"] == 4 and info["alpha"] == 8.0 and info["scale"] == 2.0
    assert info["tensors"] == 2 * 7 * LAYERS and len(info["sha256"]) == 64

    reader = gguf.GGUFReader(str(tmp_path / "adapter.gguf"))
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.type") == "adapter" and _field(reader, "adapter.type") == "lora"
    alpha = reader.fields["adapter.lora.alpha"]
    assert alpha.types == [gguf.GGUFValueType.FLOAT32] and _field(reader, "adapter.lora.alpha") == 8.0
    got = {t.name: t for t in reader.tensors}
    assert set(got) == {f"blk.{layer}.{KIND[m]}.weight.lora_{ab}" for layer in range(LAYERS) for m in SHAPES for ab in "ab"}
    for layer in range(LAYERS):
        for module, (out, inp) in SHAPES.items():
            a_key = f"base_model.model.model.layers.{layer}.{module}.lora_A.weight"
            a, b = tensors[a_key], tensors[a_key.replace("lora_A", "lora_B")]
            ga, gb = got[f"blk.{layer}.{KIND[module]}.weight.lora_a"], got[f"blk.{layer}.{KIND[module]}.weight.lora_b"]
            # llama.cpp: a.ne = [in, r] (== W.ne[0]), b.ne = [r, out] (== W.ne[1])
            assert tuple(int(x) for x in ga.shape) == (inp, 4) and tuple(int(x) for x in gb.shape) == (4, out)
            assert ga.tensor_type == gguf.GGMLQuantizationType.F32
            np.testing.assert_array_equal(np.asarray(ga.data).reshape(4, inp), a)
            heads = {"attn_q": HEADS, "attn_k": KV_HEADS}.get(KIND[module])
            want_b = b if heads is None else permute(b, heads)
            np.testing.assert_array_equal(np.asarray(gb.data).reshape(out, 4), want_b)
            if heads is not None:
                assert not np.array_equal(want_b, b)  # the permutation moved rows


def test_rslora_alpha_is_rescaled_to_llama_cpps_alpha_over_rank(tmp_path):
    base = _base_gguf(tmp_path / "base.gguf")
    _adapter(tmp_path / "adapter", rank=4, alpha=8, use_rslora=True)
    info = export_lora_gguf(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    assert info["scale"] == pytest.approx(8 / 4 ** 0.5)


@pytest.mark.parametrize("change,message", [
    ({"use_dora": True}, "use_dora"),
    ({"rank_pattern": {"q_proj": 2}}, "rank_pattern"),
    ({"bias": "all"}, "bias"),
    ({"peft_type": "IA3"}, "not a peft LoRA adapter"),
])
def test_adapters_llama_cpp_cannot_express_are_refused(tmp_path, change, message):
    base = _base_gguf(tmp_path / "base.gguf")
    _adapter(tmp_path / "adapter", **change)
    with pytest.raises(UsageError, match=message):
        export_lora_gguf(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    assert not (tmp_path / "adapter.gguf").exists()


def test_an_adapter_for_another_base_or_with_bad_weights_is_refused(tmp_path):
    other = _base_gguf(tmp_path / "other.gguf", hidden=HIDDEN * 2)
    _adapter(tmp_path / "adapter")
    with pytest.raises(UsageError, match="do not fit the base weight"):
        export_lora_gguf(tmp_path / "adapter", other, tmp_path / "adapter.gguf")

    from safetensors.numpy import load_file, save_file

    base = _base_gguf(tmp_path / "base.gguf")
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in tensors if "lora_B" in k)
    tensors[key][0, 0] = np.nan
    save_file(tensors, str(weights))
    with pytest.raises(UsageError, match="non-finite"):
        export_lora_gguf(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    del tensors[key]
    save_file(tensors, str(weights))
    with pytest.raises(UsageError, match="lacks its lora_b"):
        export_lora_gguf(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    assert not list(tmp_path.glob("*adapter.gguf*"))  # nothing half-written


def test_peft_keys_map_to_llama_cpp_names():
    assert gguf_tensor_name("base_model.model.model.layers.12.self_attn.k_proj.lora_B.weight") == ("blk.12.attn_k.weight", "lora_b")
    assert gguf_tensor_name("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight") == ("blk.0.ffn_down.weight", "lora_a")
    for bad in ("base_model.model.lm_head.lora_A.weight", "base_model.model.model.layers.0.self_attn.rotary.lora_A.weight",
                "base_model.model.model.layers.0.mlp.up_proj.lora_embedding_A"):
        with pytest.raises(UsageError):
            gguf_tensor_name(bad)
