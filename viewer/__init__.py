"""``ponder view``: a local web viewer of run folders (trajectories, eval results, votes, search trees)."""
