"""Agents: the kernel (state, runtime context, skeleton, driver, context budget), ReAct, PAL, env agents, parsing."""
