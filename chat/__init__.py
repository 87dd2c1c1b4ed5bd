"""``ponder chat``: a multi-turn terminal chat on the ReAct / PAL agents, persisted as LangGraph threads.

Modules: ``graph`` (the conversation graph), ``threads`` (SQLite checkpointer and thread listing), ``session``
(one chat's state and its turns), ``streaming`` (token streaming through any backend), ``render`` (Rich
output), ``commands`` (slash commands), ``repl`` (the input loop), ``cli`` (the Typer command).
"""
