"""Agents: prompts (text files), output parsing and the high-level :func:`run_agent` entry point."""
