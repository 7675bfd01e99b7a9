"""Evaluator: property tests, the judge (evaluator LLM), the tiered reward, goals, selection and datasets."""
