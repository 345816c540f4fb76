"""Talking to vLLM: a managed local server or an existing one, and structured generation."""
