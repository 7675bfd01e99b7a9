"""A peft LoRA adapter written as a llama.cpp LoRA GGUF, so llama.cpp serves a tuned generator.

llama.cpp's adapter format (read from its `convert_lora_to_gguf.py` and `src/llama-adapter.cpp`):

- metadata: ``general.architecture`` = the base's ("llama"), ``general.type`` = "adapter",
  ``adapter.type`` = "lora", ``adapter.lora.alpha`` (float32);
- per adapted weight ``blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight`` two
  tensors ``<name>.lora_a`` (torch shape [r, in], GGUF ne [in, r]) and ``<name>.lora_b`` (torch [out, r],
  GGUF ne [r, out]): llama.cpp checks ``a.ne[0] == W.ne[0]``, ``b.ne[1] == W.ne[1]`` and
  ``a.ne[1] == b.ne[0]``;
- the served weight is ``W + scale * B @ A`` with ``scale = alpha / r`` (r = ``b.ne[0]``), peft's
  ``lora_alpha / r`` (rsLoRA's ``alpha / sqrt(r)`` is written as alpha * sqrt(r));
- llama.cpp's converter permuted the base's Q and K rows per head for its RoPE layout (`model.permute`),
  so the rows of the Q and K ``lora_b`` (the output side) get the same permutation; ``lora_a`` is untouched.

Pure numpy: reads ``adapter/adapter_model.safetensors`` + ``adapter_config.json`` and the base GGUF's
header (memory-mapped), no torch model.

    info = export_lora_gguf(folder / "adapter", base_gguf, folder / "adapter.gguf")
    info["sha256"], info["rank"], info["alpha"], info["tensors"]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from tfcaf.errors import UsageError
from tfcaf.files import read_json

ADAPTER_GGUF = "adapter.gguf"
"""File name of the llama.cpp LoRA adapter inside a generator folder."""

HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}
"""transformers Llama projection -> llama.cpp tensor kind (the inverse of model.hf_name for LoRA targets)."""

MAX_CONFIG_BYTES = 1 << 20


def _adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise UsageError(f"{adapter_dir}: no adapter_config.json (not a peft LoRA adapter).")
    config = read_json(path, "peft adapter config", max_bytes=MAX_CONFIG_BYTES)
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise UsageError(f"{path}: not a peft LoRA adapter (peft_type {config.get('peft_type') if isinstance(config, dict) else None!r}).")
    unsupported = [k for k in ("use_dora", "rank_pattern", "alpha_pattern", "modules_to_save", "layer_replication",
                               "trainable_token_indices", "alora_invocation_tokens") if config.get(k)]
    if config.get("bias", "none") != "none":
        unsupported.append("bias")
    if unsupported:
        raise UsageError(f"{path}: llama.cpp LoRA GGUF cannot express {', '.join(unsupported)}; serve this generator "
                         "with --backend transformers.")
    return config


def gguf_tensor_name(peft_key: str) -> tuple[str, str]:
    """peft key `base_model.model.model.layers.N.<mod>.<proj>.lora_A.weight` -> ('blk.N.<kind>.weight', 'lora_a')."""
    parts = peft_key.split(".")
    try:
        i = parts.index("layers")
        layer = int(parts[i + 1])
        module = ".".join(parts[i + 2:i + 4])
        which = parts[i + 4]
        rest = parts[i + 5:]
    except (ValueError, IndexError):
        raise UsageError(f"adapter tensor '{peft_key}' is not a LoRA weight of a Llama layer.") from None
    if module not in HF_TO_GGUF or which not in ("lora_A", "lora_B") or rest != ["weight"]:
        raise UsageError(f"adapter tensor '{peft_key}': llama.cpp has no LoRA slot for it.")
    return f"blk.{layer}.{HF_TO_GGUF[module]}.weight", which.lower()


def _base_header(base_gguf: Path) -> tuple[str, dict[str, Any], dict[str, tuple[int, ...]]]:
    """(architecture, llama hyper-parameters, tensor name -> GGUF ne) of the base GGUF."""
    import gguf

    from tfcaf.generator.tuning.model import gguf_config

    reader = gguf.GGUFReader(str(base_gguf))
    hp = gguf_config(reader)  # UsageError unless llama
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    return "llama", hp, shapes


def export_lora_gguf(adapter_dir: Path, base_gguf: Path, out: Path) -> dict[str, Any]:
    """Write the peft LoRA adapter in `adapter_dir` as a llama.cpp LoRA GGUF at `out` for the base `base_gguf`.

    Every tensor is checked against the base's shapes (llama.cpp's own checks); the file is written to a
    temporary name and renamed, so a crash leaves no half file. Returns {'file', 'sha256', 'bytes', 'rank',
    'alpha', 'scale', 'tensors'}."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from tfcaf.generator.tuning.model import permute, sha256_file

    adapter_dir, base_gguf, out = Path(adapter_dir), Path(base_gguf), Path(out)
    config = _adapter_config(adapter_dir)
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise UsageError(f"{adapter_dir}: no adapter_model.safetensors (only safetensors adapters are exported).")
    rank = int(config.get("r") or 0)
    alpha = float(config.get("lora_alpha") or 0)
    if rank <= 0 or not math.isfinite(alpha) or alpha <= 0:
        raise UsageError(f"{adapter_dir}: adapter rank {rank} / alpha {alpha} are not positive.")
    if config.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)  # peft scales by alpha / sqrt(r); llama.cpp by alpha / r
    arch, hp, shapes = _base_header(base_gguf)
    heads = {"attn_q": hp["num_attention_heads"], "attn_k": hp["num_key_value_heads"]}
    pairs: dict[str, dict[str, Any]] = {}
    for key, array in load_file(str(weights_path)).items():
        name, which = gguf_tensor_name(key)
        pairs.setdefault(name, {})[which] = np.ascontiguousarray(array, dtype=np.float32)
    if not pairs:
        raise UsageError(f"{weights_path}: the adapter holds no LoRA tensors.")
    writer_tensors: list[tuple[str, Any]] = []
    for name in sorted(pairs, key=lambda n: (int(n.split(".")[1]), n)):
        pair = pairs[name]
        if set(pair) != {"lora_a", "lora_b"}:
            raise UsageError(f"{weights_path}: {name} lacks its {'lora_b' if 'lora_a' in pair else 'lora_a'} tensor.")
        a, b = pair["lora_a"], pair["lora_b"]  # a [r, in], b [out, r]
        if name not in shapes:
            raise UsageError(f"{weights_path}: {name} is not a tensor of the base {base_gguf.name} (wrong base?).")
        ne = shapes[name]  # (in, out)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != ne[0] or b.shape[0] != ne[1] or a.shape[0] != b.shape[1] \
                or a.shape[0] != rank:
            raise UsageError(f"{weights_path}: {name} LoRA shapes A {a.shape} / B {b.shape} do not fit the base weight "
                             f"[{ne[1]}, {ne[0]}] at rank {rank}.")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise UsageError(f"{weights_path}: {name} holds non-finite LoRA weights.")
        kind = name.split(".")[2]
        if kind in heads:  # B's rows are the output rows the converter permuted in the base
            b = np.ascontiguousarray(permute(b, heads[kind]))
        writer_tensors += [(f"{name}.lora_a", a), (f"{name}.lora_b", b)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        writer = gguf.GGUFWriter(str(tmp), arch=arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        for tname, array in writer_tensors:
            writer.add_tensor(tname, array)  # numpy [rows, cols] -> GGUF ne [cols, rows]
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"file": out.name, "sha256": sha256_file(out), "bytes": out.stat().st_size, "rank": rank,
            "alpha": float(alpha), "scale": float(alpha) / rank, "tensors": len(writer_tensors),
            "base_sha256": sha256_file(base_gguf), "format": "llama.cpp LoRA GGUF (F32)"}


def base_gguf_path(identity: dict[str, Any]) -> Path | None:
    """The base GGUF file a manifest's `base` names (smollm2 -> the shipped file), or None for other bases."""
    if identity.get("kind") != "gguf":
        return None
    spec = str(identity.get("spec") or "")
    if spec == "smollm2":
        from tfcaf.generator.backend_local import default_gguf

        return default_gguf()
    return Path(spec)


def export_generator(folder: Path, force: bool = False) -> dict[str, Any]:
    """Write `adapter.gguf` into a finished LoRA generator folder whose base is a GGUF and record it (with
    its sha256) in the manifest. The base must still hash to the manifest's sha256. Returns the record."""
    from tfcaf.generator.tuning.model import sha256_file
    from tfcaf.generator.tuning.serve import read_manifest
    from tfcaf.generator.tuning.train import write_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("status") != "finished":
        raise UsageError(f"generator {folder.name} did not finish training (status {manifest.get('status')!r}).")
    if manifest.get("adapter") != "lora" or not (folder / "adapter").is_dir():
        raise UsageError(f"generator {folder.name} is fully fine-tuned (no LoRA adapter): llama.cpp serving needs a "
                         "LoRA adapter; it is served with --backend transformers.")
    base = base_gguf_path(manifest.get("base") or {})
    if base is None:
        raise UsageError(f"generator {folder.name} was tuned on base {manifest['base'].get('spec')!r}, not a GGUF: "
                         "llama.cpp cannot serve it; it is served with --backend transformers.")
    if not base.is_file():
        raise UsageError(f"generator {folder.name}: its base GGUF {base} is missing.")
    if sha256_file(base) != manifest["base"].get("sha256"):
        raise UsageError(f"generator {folder.name}: the base {base.name} no longer hashes to the manifest's sha256; "
                         "retrain it or restore the base.")
    existing = manifest.get("gguf_adapter")
    if existing and (folder / ADAPTER_GGUF).is_file() and not force:
        return existing
    record = export_lora_gguf(folder / "adapter", base, folder / ADAPTER_GGUF)
    record["adapter_sha256"] = sha256_file(folder / "adapter" / "adapter_model.safetensors")
    manifest["gguf_adapter"] = record
    write_manifest(folder, manifest)
    return record
