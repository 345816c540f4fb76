"""LLM user profiles: prompt context, grounding checks, batch profiling, updates, cold start."""
