"""Simulated traffic for the three inbound sources (模拟流量, ``gridlink simulate``), and
the departments and command center that work the cases.

- :mod:`simulation.generator` — the pure, seeded generator: ``Generator``,
  ``generate``, ``Options``, ``Mix``, ``Message``;
- :mod:`simulation.outcome` — ``Expected``, what the pipeline must make of each message;
- :mod:`simulation.vocabulary` — templates and word lists (``simulation/data/*.toml``);
- :mod:`simulation.malformed` — broken messages and their error codes;
- :mod:`simulation.producer` — sending to Kafka, paced, and the outcome file; replay;
- :mod:`simulation.behaviour` — what department desks and an operator do next, and when
  (pure, seeded: claims, late ones, returns, extensions, handling, closing, callbacks);
- :mod:`simulation.actors` — ``Actors``: those people acting through the REST API
  (``simulate --departments``);
- :mod:`simulation.cli` — the ``simulate`` click command.
"""

from simulation.generator import Generator, Message, Mix, Options, generate
from simulation.outcome import Expected
from simulation.vocabulary import Vocabulary, load_vocabulary

__all__ = [
    "Expected",
    "Generator",
    "Message",
    "Mix",
    "Options",
    "Vocabulary",
    "generate",
    "load_vocabulary",
]
