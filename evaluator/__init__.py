"""Evaluator: property tests, the evaluator LLM (critic), scoring and selection."""
