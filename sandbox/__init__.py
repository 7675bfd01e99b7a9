"""Sandbox: layered vetting of LLM-written credit functions and export to a plain-data graph. See SECURITY.md."""
