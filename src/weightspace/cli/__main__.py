"""``python -m weightspace.cli``: the ``weightspace`` command."""

from . import main

main()
