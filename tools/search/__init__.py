"""Offline search over a JSONL corpus (BM25, optional dense / hybrid) and the ReAct search tools."""
