"""Sandbox: layered vetting of LLM-written credit functions and export to a plain-data graph. See SECURITY.md.

Public API: `extract_source`, `Vetter`, `VetOptions`, `vet` (tfcaf.sandbox.vetting), `Verdict`,
`STATUSES` (tfcaf.sandbox.verdict), `load_graph`, `graph_digest` (tfcaf.sandbox.graph).
"""

from tfcaf.sandbox.graph import graph_digest, load_graph
from tfcaf.sandbox.verdict import STATUSES, Verdict
from tfcaf.sandbox.vetting import Vetter, VetOptions, extract_source, vet

__all__ = ["STATUSES", "Verdict", "Vetter", "VetOptions", "extract_source", "graph_digest", "load_graph", "vet"]
