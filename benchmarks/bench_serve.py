"""Serving a tuned generator: llama.cpp (base GGUF + adapter.gguf) vs transformers (+ peft), same prompt.

Four arms, side by side in one process, 1 thread each, interleaved repetitions: llama.cpp without and
with the LoRA adapter, transformers float32 without (adapter disabled) and with the peft adapter. The
prompt is `--task`'s code-mode prompt (SmolLM2 chat template); greedy decoding of `--max-tokens` tokens
(greedy, so every arm decodes a comparable answer; EOS may end one earlier: the token counts are printed).
The adapter is a rank-8 LoRA on every projection with B drawn at `--b-std` (seeded), or `--generator DIR`
(a `tfcaf tune` folder on the smollm2 base). Per arm and repetition: prompt tokens, completion tokens,
wall seconds, end-to-end tokens/s (completion tokens / wall, prompt evaluation included) and decode
tokens/s (llama.cpp: its own `predicted_per_second`; transformers: (G - 1) / (wall - time of a 1-token
generate)), and prompt tokens/s. llama.cpp's prompt cache is off, so each repetition evaluates the prompt
again. Then the RL use: `--reps` samples of the prompt at temperature 1 through `llamacpp_sampler`
(base and tuned; the prompt evaluated once, then served from the KV cache).

    python benchmarks/bench_serve.py --task matrix_climbing --max-tokens 96 --reps 3 \
        --out benchmarks/results/serve_cpu.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path


def emit(record: dict, out) -> None:
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    if out is not None:
        out.write(line + "\n")
        out.flush()


def hand_built(store: Path, b_std: float, seed: int):
    """A finished generator folder on smollm2 with a random-B LoRA; returns (folder, peft model, tokenizer)."""
    import torch

    from tfcaf.generator.tuning.export import export_generator
    from tfcaf.generator.tuning.model import load_base, with_lora
    from tfcaf.generator.tuning.train import MANIFEST_KIND, write_manifest

    torch.manual_seed(seed)
    base = load_base("smollm2")
    model = with_lora(base.model, rank=8, alpha=16)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * b_std)
    model.eval()
    folder = store / "generators" / "bench"
    model.save_pretrained(str(folder / "adapter"))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_manifest(folder, {"kind": MANIFEST_KIND, "name": "bench", "method": "hand", "mode": "code", "base": base.identity,
                            "adapter": "lora", "config": {"b_std": b_std, "seed": seed}, "seed": seed, "versions": {},
                            "started_at": now, "finished_at": now, "status": "finished",
                            "data": {"path": None, "sha256": None, "rows": 0}})
    export_generator(folder)
    return folder, model, base.tokenizer


def llamacpp_once(backend, messages, max_tokens: int) -> dict:
    request = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": False, "cache_prompt": False}
    t0 = time.perf_counter()
    answer = backend._server.handle_chat_completions(request)
    wall = time.perf_counter() - t0
    usage, timings = answer["usage"], answer.get("timings") or {}
    return {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"], "wall_s": wall,
            "decode_tokens_per_s": timings.get("predicted_per_second"), "prompt_tokens_per_s": timings.get("prompt_per_second"),
            "text": answer["choices"][0]["message"]["content"]}


def transformers_once(model, tokenizer, messages, max_tokens: int, adapter: bool) -> dict:
    import contextlib

    import torch

    from tfcaf.generator.tuning.model import chat_ids

    ids = torch.tensor([chat_ids(tokenizer, messages)])
    ctx = contextlib.nullcontext() if adapter else model.disable_adapter()

    def gen(n: int):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
        return out, time.perf_counter() - t0

    with ctx:
        _, first = gen(1)
        out, wall = gen(max_tokens)
    g = int(out.shape[1] - ids.shape[1])
    return {"prompt_tokens": int(ids.shape[1]), "completion_tokens": g, "wall_s": wall,
            "decode_tokens_per_s": (g - 1) / (wall - first) if g > 1 and wall > first else None,
            "prompt_tokens_per_s": int(ids.shape[1]) / first,
            "text": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="matrix_climbing")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--b-std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generator", default=None, help="a tfcaf tune folder (smollm2 base) instead of the hand-built LoRA")
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = ap.parse_args()

    import torch

    from tfcaf.generator.backend_local import LocalBackend
    from tfcaf.generator.backends import BackendSettings
    from tfcaf.generator.tuning.train import _task_messages
    from tfcaf.runtime import configure_torch

    configure_torch(1)
    torch.set_num_threads(1)
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    messages = _task_messages(args.task, "code")
    tmp = tempfile.TemporaryDirectory(prefix="bench_serve_")
    if args.generator:
        from tfcaf.generator.tuning.serve import load_generator

        folder = Path(args.generator)
        model, tokenizer, _ = load_generator(folder)
    else:
        folder, model, tokenizer = hand_built(Path(tmp.name), args.b_std, args.seed)
    arms = {
        "llamacpp_base": LocalBackend(BackendSettings(threads=1, context=4096), slots=1),
        "llamacpp_lora": LocalBackend(BackendSettings(model=str(folder), threads=1, context=4096), slots=1),
    }
    runs: dict[str, list[dict]] = {a: [] for a in (*arms, "transformers_base", "transformers_peft")}
    meta = {"bench": "serve", "task": args.task, "max_tokens": args.max_tokens, "reps": args.reps, "threads": 1,
            "adapter": str(folder.name) if args.generator else f"hand-built rank 8, B std {args.b_std}, seed {args.seed}",
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    for rep in range(args.reps):  # interleaved, so machine load hits every arm alike
        for arm, backend in arms.items():
            r = llamacpp_once(backend, messages, args.max_tokens)
            runs[arm].append(r)
            emit({**meta, "arm": arm, "rep": rep, **{k: v for k, v in r.items() if k != "text"}}, out)
        for arm, adapter in (("transformers_base", False), ("transformers_peft", True)):
            r = transformers_once(model, tokenizer, messages, args.max_tokens, adapter)
            runs[arm].append(r)
            emit({**meta, "arm": arm, "rep": rep, **{k: v for k, v in r.items() if k != "text"}}, out)
    for backend in arms.values():
        backend.close()
    # the RL use: many samples of one prompt through llamacpp_sampler (the prompt is evaluated once, then cached)
    from tfcaf.generator.tuning.serve import llamacpp_sampler

    for arm, gen in (("sampler_base", None), ("sampler_lora", folder)):
        with llamacpp_sampler(gen, context=4096, threads=1, seed=args.seed) as sampler:
            texts = sampler.sample(messages, n=args.reps, max_tokens=args.max_tokens, temperature=1.0, seed=args.seed)
            last = dict(sampler.last)
        r = {"prompt_tokens": last["prompt_tokens"] // args.reps, "completion_tokens": last["completion_tokens"],
             "wall_s": last["seconds"], "decode_tokens_per_s": None, "prompt_tokens_per_s": None, "text": texts[0]}
        runs[arm] = [r]
        emit({**meta, "arm": arm, "rep": "all", "samples": args.reps, "temperature": 1.0,
              **{k: v for k, v in r.items() if k != "text"}}, out)
    summary = {}
    for arm, rs in runs.items():
        e2e = statistics.median(r["completion_tokens"] / r["wall_s"] for r in rs)
        dec = [r["decode_tokens_per_s"] for r in rs if r["decode_tokens_per_s"]]
        pp = [r["prompt_tokens_per_s"] for r in rs if r["prompt_tokens_per_s"]]
        summary[arm] = {"e2e_tokens_per_s": round(e2e, 2), "decode_tokens_per_s": round(statistics.median(dec), 2) if dec else None,
                        "prompt_tokens_per_s": round(statistics.median(pp), 2) if pp else None,
                        "completion_tokens": [r["completion_tokens"] for r in rs], "prompt_tokens": rs[0]["prompt_tokens"],
                        "first_answer": rs[0]["text"][:120]}
    ratios = {"lora_vs_base_llamacpp_e2e": summary["llamacpp_lora"]["e2e_tokens_per_s"] / summary["llamacpp_base"]["e2e_tokens_per_s"],
              "llamacpp_lora_vs_transformers_peft_e2e": summary["llamacpp_lora"]["e2e_tokens_per_s"] / summary["transformers_peft"]["e2e_tokens_per_s"],
              "llamacpp_base_vs_transformers_base_e2e": summary["llamacpp_base"]["e2e_tokens_per_s"] / summary["transformers_base"]["e2e_tokens_per_s"],
              "llamacpp_lora_vs_transformers_peft_decode": summary["llamacpp_lora"]["decode_tokens_per_s"] / summary["transformers_peft"]["decode_tokens_per_s"],
              "llamacpp_base_vs_transformers_base_decode": summary["llamacpp_base"]["decode_tokens_per_s"] / summary["transformers_base"]["decode_tokens_per_s"],
              "sampler_lora_vs_transformers_peft_e2e": summary["sampler_lora"]["e2e_tokens_per_s"] / summary["transformers_peft"]["e2e_tokens_per_s"]}
    emit({**meta, "summary": summary, "ratios": {k: round(v, 3) for k, v in ratios.items()}}, out)
    if out is not None:
        out.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
