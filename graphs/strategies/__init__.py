"""Run strategies: how many times, and how, an agent attempts a task (single, trials with memory, self-consistency)."""
