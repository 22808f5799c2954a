"""matplotlib's pyplot on the Agg (file-only) backend, for figures written as PNG files."""

from __future__ import annotations


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend: no display needed, figures are saved, not shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
