"""Generator: LLM backends, prompt rendering, candidate extraction and the generate loop.

Data flows one way: task card -> prompt -> LLM answer -> candidate -> verdict -> selection.

    backends.py            the Backend protocol, Completion, the BACKENDS registry
    backend_local.py       embedded llama.cpp (xllamacpp) + SmolLM2 GGUF, in process, offline (default)
    backend_openai.py      any OpenAI-compatible endpoint (openai SDK), bounded retries
    backend_transformers.py  a local Hugging Face model directory
    prompting.py           renders prompts/*.j2 (StrictUndefined; LLM text only as variables)
    spec.py                spec mode: JSON credit spec -> schema, clamping, Jinja-rendered QLLMNetwork
    config.py              GenerateConfig (flag > env > config file > default, with sources)
    loop.py                R rounds x K candidates, repairs, judge, selection
    rundir.py              append-only run directory, response cache, resume
    session.py             one run end to end (backend, vetter, loop, summary)
    review.py              terminal diff and the self-contained HTML review page
    cli.py                 `tfcaf generate | review | approve | approved`
"""
