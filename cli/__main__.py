"""``python -m translator.cli``: the same as the ``gantool`` command."""

from . import main

main()
