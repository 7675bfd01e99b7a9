"""Generator: LLM backends, prompt rendering, candidate extraction and the generate loop."""
