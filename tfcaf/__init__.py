"""tfcaf: LLM-written training-free credit assignment functions (TFCAFs), done safely.

Stages, one folder each, data flowing one way:

    tasks/ (task cards, batched envs) -> prompts/ + generator/ (LLM -> candidate source)
    -> sandbox/ (gates, worker, export to a graph) -> evaluator/ (property tests, judge, tiered reward, goals, selection, dataset)
    -> approval (a person's `tfcaf approve`) -> trainer/ (value decomposition with the approved graph)

The core package (this folder) holds what every stage shares: the TFCAF contract and shape glossary
(`tfcaf.contract`), error types with their exit codes (`tfcaf.errors`), the store layout
(`tfcaf.store`), provenance (`tfcaf.provenance`) and the command line (`tfcaf.cli`).
Importing `tfcaf` imports neither torch nor JAX.
"""

__version__ = "0.1.0"
