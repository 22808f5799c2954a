"""Two-dimensional views of an encoder's embedding space (paper 000, figures 6, 7 and 21-23).

Each point is one network's embedding z (N, Z) reduced to two dimensions with PCA or t-SNE and
coloured by a column of the zoo table: discrete colours for categorical columns (``task_id``,
``split``, ``step``), a colormap with a colorbar for continuous ones (``performance``, ``angle``,
``accuracy``). The paper's figures put PCA on top and t-SNE below: :func:`plot_embedding_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..plotting import pyplot

METHODS = ("pca", "tsne")
#: fewer points than this give no meaningful two-dimensional picture (and t-SNE needs
#: perplexity < n)
MIN_POINTS = 5
#: an integer column with at most this many distinct values is drawn as categories
MAX_INTEGER_CATEGORIES = 24
#: categories listed in a legend; beyond this the colours alone tell clusters apart
MAX_LEGEND_ENTRIES = 12


def _check(z: np.ndarray, table: pd.DataFrame | None = None) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"expected embeddings of shape (N, Z) with Z >= 2, got {z.shape}")
    if len(z) < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} embeddings for a two-dimensional view, got {len(z)}")
    if not np.isfinite(z).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if table is not None and len(table) != len(z):
        raise ValueError(f"{len(z)} embeddings but {len(table)} table rows; row i must describe embedding i")
    return z


def project(z: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """Embeddings (N, Z) -> coordinates (N, 2) and the two axis labels.

    t-SNE's perplexity is the usual 30, lowered to (N - 1) / 3 for small N so that every point
    still has about three times the perplexity in neighbours."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = _check(z)
    if method == "pca":
        pca = PCA(n_components=2, random_state=seed)
        coordinates = pca.fit_transform(z)
        share = pca.explained_variance_ratio_ * 100 if pca.explained_variance_.sum() > 0 else (0.0, 0.0)
        return coordinates, (f"PC 1 ({share[0]:.0f}% variance)", f"PC 2 ({share[1]:.0f}% variance)")
    if method == "tsne":
        perplexity = min(30.0, max(1.0, (len(z) - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
        return tsne.fit_transform(z), ("t-SNE 1", "t-SNE 2")
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def is_categorical(column: pd.Series) -> bool:
    """Whether ``column`` is drawn with discrete colours: non-numeric columns, booleans and
    integer columns with few distinct values; floats are continuous."""
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return True
    if pd.api.types.is_integer_dtype(column):
        return column.nunique() <= MAX_INTEGER_CATEGORIES
    return False


def _draw(ax, coordinates: np.ndarray, column: pd.Series, categorical: bool | None, highlight) -> None:
    """Scatter ``coordinates`` on ``ax`` coloured by ``column`` (a colorbar or a legend)."""
    import matplotlib.pyplot as plt

    categorical = is_categorical(column) if categorical is None else categorical
    x, y = coordinates[:, 0], coordinates[:, 1]
    size = 14 if len(coordinates) < 500 else 6
    if categorical:
        categories = list(column.dropna().unique())
        try:
            categories.sort()
        except TypeError:  # mixed types: order by their text
            categories.sort(key=str)
        codes = pd.Categorical(column, categories=categories).codes
        palette = "tab10" if len(categories) <= 10 else "tab20" if len(categories) <= 20 else "nipy_spectral"
        colours = plt.get_cmap(palette)(
            np.linspace(0, 1, len(categories)) if palette == "nipy_spectral" else np.arange(len(categories))
        )
        for code, category in enumerate(categories):
            chosen = codes == code
            ax.scatter(x[chosen], y[chosen], s=size, color=colours[code], label=str(category), linewidths=0)
        if len(categories) <= MAX_LEGEND_ENTRIES:
            ax.legend(title=column.name, fontsize=7, title_fontsize=8, markerscale=1.5, loc="best")
    else:
        points = ax.scatter(x, y, s=size, c=column.to_numpy(dtype=float), cmap="viridis", linewidths=0)
        ax.figure.colorbar(points, ax=ax, label=column.name)
    if highlight is not None:
        mask = np.asarray(highlight, dtype=bool)
        if mask.shape != (len(coordinates),):
            raise ValueError(f"highlight must be a boolean mask of length {len(coordinates)}, got shape {mask.shape}")
        ax.scatter(
            x[mask], y[mask], s=size * 2.5, facecolors="none", edgecolors="black", linewidths=0.8, label="highlighted"
        )
    ax.set_xticks([])
    ax.set_yticks([])


def _column(table: pd.DataFrame, color_by: str) -> pd.Series:
    if color_by not in table.columns:
        raise ValueError(f"no column {color_by!r} to colour by; the table has {list(table.columns)}")
    return table[color_by].reset_index(drop=True)


def plot_embeddings(
    z: np.ndarray,
    table: pd.DataFrame,
    path,
    color_by: str,
    method: str = "pca",
    title: str = "",
    highlight=None,
    categorical: bool | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Save one 2-D view of embeddings ``z`` (row i described by ``table`` row i), coloured by
    ``color_by``; ``highlight`` is an optional boolean mask of points to ring in black (figure 6
    rings one language). ``categorical`` overrides :func:`is_categorical`. Returns the
    coordinates."""
    plt = pyplot()

    z = _check(z, table)
    column = _column(table, color_by)
    coordinates, (xlabel, ylabel) = project(z, method, seed)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    _draw(ax, coordinates, column, categorical, highlight)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return coordinates


def plot_embedding_figure(
    z: np.ndarray,
    table: pd.DataFrame,
    path,
    color_by: str | Sequence[str] = ("task_id", "performance"),
    title: str = "",
    highlight=None,
    seed: int = 0,
) -> None:
    """Figures 6/7 for one encoder: PCA (top row) and t-SNE (bottom row) of the same embeddings,
    one column per colouring in ``color_by`` (e.g. task and performance for formal languages,
    ``("angle", "accuracy")`` for digits). Each projection is computed once."""
    plt = pyplot()

    z = _check(z, table)
    colourings = [color_by] if isinstance(color_by, str) else list(color_by)
    columns = [_column(table, name) for name in colourings]
    fig, axes = plt.subplots(2, len(columns), figsize=(5.0 * len(columns), 8.5), squeeze=False)
    for row, method in enumerate(METHODS):
        coordinates, (xlabel, ylabel) = project(z, method, seed)
        for ax, column in zip(axes[row], columns):
            _draw(ax, coordinates, column, None, highlight)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{'PCA' if method == 'pca' else 't-SNE'}, coloured by {column.name}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
