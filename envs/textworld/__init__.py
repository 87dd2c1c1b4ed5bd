"""TextWorld games: ALFWorld-style household games and TextWorld's challenges, generated offline and cached.

``spec.py`` (suite files: games by tier and seed), ``makers.py`` (game builders), ``generate.py`` (the
generator process), ``cache.py`` (the game cache and manifests), ``env.py`` (the :class:`Env` over a game),
``suite.py`` (the ``textworld`` suite: the agent and the ``walkthrough`` harness policy).
"""
