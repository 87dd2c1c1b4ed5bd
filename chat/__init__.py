"""``ponder chat``: a multi-turn terminal chat on the ReAct / PAL agents, persisted as LangGraph threads.

Modules: ``graph`` (the conversation graph), ``threads`` (SQLite checkpointer and thread listing), ``session``
(one chat's state and its turns), ``streaming`` (token streaming through any backend), ``render`` (Rich
output), ``commands`` (slash commands, the run-spec ones generated from ``RunSpec``), ``repl`` (the input loop). The
``ponder chat`` command itself is :mod:`ponder.cli.chat`.
"""
