"""Environments (text games, web pages, QA / math / code datasets) and the evaluation runner."""
