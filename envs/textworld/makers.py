"""Game makers, run inside the generator process (``generate.py``) with ``PYTHONHASHSEED=0``.

* ``put`` / ``puttwo``: ALFWorld-style household games built with TextWorld's ``GameMaker``: one room with
  closed or open receptacles (cabinet, fridge, drawer...) and surfaces (countertop, table...); the task is
  "put some X in/on Y" (``puttwo``: two objects). Options: ``distractors`` (extra objects, default 2),
  ``receptacles`` (containers and surfaces each, default 2).
* ``tw-simple`` / ``tw-cooking``: TextWorld's challenges, options as ``tw-make``'s flags (``{"recipe": 2,
  "open": true}`` is ``--recipe 2 --open``).

ALFWorld's clean / heat / cool / examine-under-a-lamp tasks need their own game logic (ALFWorld's ``alfred.twl2``
through the PDDL engine): TextWorld's standard rules have no such actions, so the closest here is tw-cooking's
``cook X with stove/oven`` (heating) and ``slice/dice/chop`` (preparing).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

OBJECTS = ["apple", "mug", "spraybottle", "soapbar", "knife", "tomato", "egg", "cup", "book", "candle", "pen",
           "plate", "bowl", "vase", "keychain", "potato", "lettuce", "cellphone", "remotecontrol", "pillow"]
CONTAINERS = ["cabinet", "fridge", "drawer", "box", "safe", "garbagecan", "microwave"]
SURFACES = ["countertop", "table", "shelf", "desk", "sidetable", "diningtable", "dresser", "armchair"]
ROOMS = ["kitchen", "bedroom", "bathroom", "living room", "office"]


def make_game(generator: str, options: dict[str, Any], seed: int) -> Any:
    """Build (not compile) the ``textworld.Game`` for one spec."""
    import textworld

    _cache_knowledge_bases()
    textworld.g_rng.set_seed(seed)
    if generator in ("put", "puttwo"):
        return _household(generator, options, seed)
    if generator in ("tw-simple", "tw-cooking"):
        return _challenge(generator, options, seed)
    raise ValueError(f"unknown generator {generator!r}")


def _cache_knowledge_bases() -> None:
    """Parse each TextWorld knowledge base once per process (each challenge reloads its own: ~1-4 s a game)."""
    from textworld.generator.data import KnowledgeBase

    if getattr(KnowledgeBase.load, "_ponder_cached", False):
        return
    original = KnowledgeBase.load.__func__  # type: ignore[attr-defined]
    loaded: dict[tuple[Any, ...], Any] = {}

    def load(cls: Any, target_dir: Any = None, logic_path: Any = None, grammar_path: Any = None) -> Any:
        key = (target_dir, logic_path, grammar_path)
        if key not in loaded:
            loaded[key] = original(cls, target_dir, logic_path, grammar_path)
        return loaded[key]

    load._ponder_cached = True  # type: ignore[attr-defined]
    KnowledgeBase.load = classmethod(load)  # type: ignore[method-assign,assignment]


def _challenge(generator: str, options: dict[str, Any], seed: int) -> Any:
    import textworld
    import textworld.challenges

    _, make, add_arguments = textworld.challenges.CHALLENGES[generator]
    argv: list[str] = []
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    settings = vars(add_arguments(argparse.ArgumentParser()).parse_args(argv))
    game_options = textworld.GameOptions()
    game_options.seeds = seed
    return make(settings=settings, options=game_options)


def _household(generator: str, options: dict[str, Any], seed: int) -> Any:
    from textworld import GameMaker, GameOptions
    from textworld.generator.data import KnowledgeBase

    rng = random.Random(seed)
    count = 2 if generator == "puttwo" else 1
    n_recept = int(options.get("receptacles", 2))
    n_objects = count + int(options.get("distractors", 2))
    game_options = GameOptions()
    game_options.kb = KnowledgeBase.default()
    maker = GameMaker(game_options)
    room = maker.new_room(rng.choice(ROOMS))
    maker.set_player(room)
    containers, surfaces = [], []
    for name in rng.sample(CONTAINERS, n_recept):
        entity = maker.new(type="c", name=name)
        entity.add_property("closed" if rng.random() < 0.7 else "open")
        room.add(entity)
        containers.append(entity)
    for name in rng.sample(SURFACES, n_recept):
        entity = maker.new(type="s", name=name)
        room.add(entity)
        surfaces.append(entity)
    holders = containers + surfaces
    names = rng.sample(OBJECTS, n_objects)
    targets = names[:count]
    dest = rng.choice(holders)
    where: dict[str, Any] = {}
    for name in names:
        obj = maker.new(type="o", name=name)
        where[name] = rng.choice([h for h in holders if h is not dest] if name in targets else holders)
        where[name].add(obj)
    commands: list[str] = []
    opened: set[str] = set()
    for name in targets:
        holder = where[name]
        if holder in containers and holder.has_property("closed") and holder.name not in opened:
            commands.append(f"open {holder.name}")
            opened.add(holder.name)
        commands.append(f"take {name} from {holder.name}")
        if dest in containers:
            if dest.has_property("closed") and dest.name not in opened:
                commands.append(f"open {dest.name}")
                opened.add(dest.name)
            commands.append(f"insert {name} into {dest.name}")
        else:
            commands.append(f"put {name} on {dest.name}")
    maker.set_quest_from_commands(commands)
    game = maker.build()
    prep = "in" if dest in containers else "on"
    what = f"some {targets[0]}" if count == 1 else f"a {targets[0]} and a {targets[1]}"
    game.objective = f"Your task is to: put {what} {prep} {dest.name}."
    game.metadata["walkthrough"] = commands
    return game
