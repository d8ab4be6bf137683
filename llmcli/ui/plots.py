"""Saving heat maps as images with matplotlib, an optional extra (`llmcli[plot]`).

PNG and SVG come from matplotlib itself; HTML is the SVG inside a small page, so it
opens in any browser without scripts.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli.errors import DiskError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FORMATS = (".png", ".svg", ".html")
EXTRA = "plot"


def check_target(path: Path) -> None:
    """Fail before any work on a file type that cannot be written."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot save {path.name}: choose a file ending in {', '.join(FORMATS)}")
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "saving images needs matplotlib",
            hint=f"install the '{EXTRA}' extra: pip install 'llmcli[{EXTRA}]'",
        ) from None
    return plt


def save_heat_maps(
    path: Path,
    labels: Sequence[str],
    maps: Sequence[tuple[str, npt.NDArray[np.float32]]],
    title: str,
) -> None:
    """One heat map per (title, matrix), side by side in rows of up to three."""
    plt = _pyplot()
    n = len(labels)
    cols = min(3, len(maps))
    rows = (len(maps) + cols - 1) // cols
    side = max(4.0, min(14.0, 0.22 * n + 2))
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax in axes.flat[len(maps) :]:
        ax.axis("off")
    for ax, (name, weights) in zip(axes.flat, maps, strict=False):
        image = ax.imshow(weights, cmap="viridis", vmin=0.0, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        ax.set_xlabel("attends to")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        if path.suffix.lower() == ".html":
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg")
            svg = buffer.getvalue()
            svg = svg[svg.find("<svg") :]  # the XML prolog and doctype have no place in HTML
            page = (
                f"<!doctype html>\n<meta charset='utf-8'>\n<title>{html.escape(title)}</title>\n"
                f"{svg}\n"
            )
            path.write_text(page, encoding="utf-8")
        else:
            fig.savefig(path, dpi=150)
    except OSError as exc:
        raise DiskError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
