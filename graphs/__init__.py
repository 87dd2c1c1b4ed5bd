"""Graphs composed of agents: run strategies (single, trials with memory, self-consistency) over one ``RunSpec``."""
