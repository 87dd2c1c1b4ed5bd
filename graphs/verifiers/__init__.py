"""Verifiers: score a finished or partial trajectory in [0, 1] (see :mod:`ponder.graphs.verifiers.base`)."""
