"""The ``tapcheck`` command line, one module per area; each command a thin shell over a library
function.

- :mod:`.data`: ``synth``, ``import``, ``datasets``, ``info``, ``doctor``
- :mod:`.models`: ``models``, ``train``, ``judge``, ``compare``, ``bench``
- :mod:`.plant`: ``evaluate``, ``enroll``
- :mod:`.station`: ``devices``, ``record``, ``listen``, ``log``
- :mod:`.demo`: ``demo``
"""

from . import data, demo, models, plant, station  # noqa: F401 - importing a module registers its commands
from .app import cli, main

__all__ = ["cli", "main"]
