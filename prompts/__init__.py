"""Prompt templates (Jinja, *.j2), rendered with StrictUndefined by tfcaf.generator.prompting."""
