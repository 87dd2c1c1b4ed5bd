"""LangGraph state machines: builder functions that return compiled graphs."""
