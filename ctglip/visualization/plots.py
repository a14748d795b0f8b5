"""Pictures of the results: organ confusion matrix and per-organ-group AUC radar (zero-shot), and
mask overlays on CT slices (fine-tuning).

matplotlib is imported inside the functions and drawn on an Agg canvas (no pyplot, no global
backend switch), so importing this module is cheap and works without a display. Each function
returns the picture as an RGB array (for an mmengine Visualizer) and saves a PNG when given a
path.
"""
import logging
import os
import os.path as osp

import numpy as np


def _new_figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig):
    """Render a matplotlib figure to an H x W x 3 uint8 RGB array."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _finish(fig, path):
    image = figure_to_rgb(fig)
    if path:
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        fig.savefig(path)
    return image


def plot_confusion_matrix(confusion, row_names, col_names=None, path=None,
                          title='Zero-shot organ recognition', only_present=True):
    """Draw a row-normalised confusion matrix (rows: true class, columns: predicted class).

    Args:
        confusion (np.ndarray): K x V counts.
        row_names (Sequence[str]): K names of the true classes.
        col_names (Sequence[str], optional): V names of the predicted classes; defaults to
            ``row_names`` (plus ``class j`` for extra columns).
        path (str, optional): where to save the PNG.
        title (str): the figure title.
        only_present (bool): show only the classes that occur as a true or a predicted class
            (a 104-class matrix with a handful of organs is otherwise mostly empty).

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    n_rows, n_cols = confusion.shape
    row_names = list(row_names)
    if col_names is None:
        col_names = row_names[:n_cols] + [f'class {j}' for j in range(len(row_names), n_cols)]
    rows, cols = np.arange(n_rows), np.arange(n_cols)
    if only_present:
        rows = np.flatnonzero(confusion.sum(1) > 0)
        cols = np.flatnonzero(confusion.sum(0) > 0)
        # keep the diagonal cells of the shown rows so correct predictions line up
        cols = np.union1d(cols, rows[rows < n_cols])
    shown = confusion[np.ix_(rows, cols)]
    totals = shown.sum(1, keepdims=True)
    normalised = np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)

    side = float(np.clip(0.12 * max(len(rows), len(cols)) + 3, 5, 16))
    fig = _new_figure((side, side))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(normalised, cmap='viridis', vmin=0, vmax=1, interpolation='nearest')
    # tick labels sized to the row pitch (points), the axes taking about 3/4 of the figure
    font = float(np.clip(0.7 * 72 * 0.75 * side / max(len(rows), len(cols), 1), 3, 9))
    ax.set_xticks(np.arange(len(cols)))
    ax.set_xticklabels([col_names[j] for j in cols], rotation=90, fontsize=font)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels([row_names[i] for i in rows], fontsize=font)
    ax.set_xlabel('predicted organ')
    ax.set_ylabel('true organ')
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true organ')
    fig.tight_layout()
    return _finish(fig, path)


def plot_radar(results_by_model, path=None, title='Zero-shot abnormality detection AUC',
               rmin=None):
    """Radar plot of per-organ-group AUC (paper Figure 4h), one polygon per model.

    Args:
        results_by_model (Mapping[str, Mapping[str, float]]): ``{model name: {organ group:
            AUC}}``; a group missing for a model leaves a gap in its polygon.
        path (str, optional): where to save the PNG.
        title (str): the figure title.
        rmin (float, optional): the value at the centre; defaults to 0.5 or lower when a value
            is below it.

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.

    Example:
        >>> plot_radar({'CT-GLIP': {'liver': 0.8, 'kidney': 0.7, 'lung': 0.75},
        ...             'CLIP': {'liver': 0.6, 'kidney': 0.6, 'lung': 0.55}}, 'radar.png')
    """
    from ctglip.datasets.organs import ORGAN_GROUPS
    groups = []
    for values in results_by_model.values():
        groups += [g for g in values if g not in groups]
    if not groups:
        raise ValueError('plot_radar needs at least one organ group value, got '
                         f'{dict(results_by_model)}')
    order = {g: i for i, g in enumerate(ORGAN_GROUPS)}
    groups.sort(key=lambda g: (order.get(g, len(order)), g))
    all_values = [v for values in results_by_model.values() for v in values.values()]
    if rmin is None:
        rmin = min(0.5, np.floor(10 * min(all_values)) / 10)

    angles = np.linspace(0, 2 * np.pi, len(groups), endpoint=False)
    fig = _new_figure((6, 7))
    ax = fig.add_subplot(1, 1, 1, projection='polar')
    for name, values in results_by_model.items():
        radii = np.array([values.get(g, np.nan) for g in groups], dtype=np.float64)
        closed_angles, closed_radii = np.r_[angles, angles[:1]], np.r_[radii, radii[:1]]
        ax.plot(closed_angles, closed_radii, marker='o', label=str(name))
        if np.isfinite(radii).all():
            ax.fill(closed_angles, closed_radii, alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels([g.replace('_', ' ') for g in groups])
    ax.set_ylim(rmin, 1.0)
    ax.set_title(title, pad=20)
    ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8)  # below
    fig.tight_layout()
    return _finish(fig, path)


def plot_mask_overlays(image, masks, path=None, title=None, row_names=None, outline=None):
    """Panels of one CT slice with a mask drawn over it (its outline and a translucent fill),
    e.g. the true tumor and the predictions of several models (paper Figure 5 style).

    Args:
        image (np.ndarray | Sequence[np.ndarray]): the slice (H x W, HU or any scale), or one
            slice per row.
        masks (Sequence[Mapping[str, np.ndarray]] | Mapping[str, np.ndarray]): per row,
            ``{panel title: H x W binary mask}``; a mask may be None (an empty panel title).
        path (str, optional): where to save the PNG.
        title (str, optional): the figure title.
        row_names (Sequence[str], optional): a label per row.
        outline (np.ndarray | Sequence[np.ndarray], optional): a mask (or one per row) drawn
            as a white dashed outline on every panel (the truth, to compare against).

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.

    Example:
        >>> plot_mask_overlays(ct[:, :, 30], {'truth': gt[:, :, 30], 'CT-GLIP': pred[:, :, 30]})
    """
    rows = [masks] if isinstance(masks, dict) else list(masks)
    images = [image] * len(rows) if isinstance(image, np.ndarray) else list(image)
    outlines = ([outline] * len(rows) if outline is None or isinstance(outline, np.ndarray)
                else list(outline))
    ncols = max(len(r) for r in rows)
    fig = _new_figure((2.6 * ncols, 2.8 * len(rows) + (0.4 if title else 0)))
    colors = ('#ff3b30', '#ffcc00', '#34c759', '#0a84ff', '#bf5af2')
    for r, (row, img, ref) in enumerate(zip(rows, images, outlines)):
        shown = np.asarray(img, dtype=np.float64).T  # x to the right, y up (origin='lower')
        for c, (name, mask) in enumerate(row.items()):
            ax = fig.add_subplot(len(rows), ncols, r * ncols + c + 1)
            ax.imshow(shown, cmap='gray', origin='lower', interpolation='nearest')
            if ref is not None and np.any(ref):
                ax.contour(np.asarray(ref, dtype=float).T, levels=[0.5], colors=['white'],
                           linewidths=0.8, linestyles='dashed', origin='lower')
            if mask is not None and np.any(mask):
                m = np.asarray(mask, dtype=bool).T
                color = colors[c % len(colors)]
                overlay = np.zeros(m.shape + (4,))
                overlay[m] = list(int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)) + [0.35]
                ax.imshow(overlay, origin='lower', interpolation='nearest')
                ax.contour(m.astype(float), levels=[0.5], colors=[color], linewidths=1.0,
                           origin='lower')
            label = str(name) if not row_names else f'{row_names[r]}: {name}'
            ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _finish(fig, path)


def has_visualizer():
    """Whether an mmengine Visualizer instance exists (a Runner creates one)."""
    from mmengine.visualization import Visualizer
    return bool(Visualizer._instance_dict)


def add_image_to_visualizer(name, image, step=None):
    """Send an RGB image to the current mmengine Visualizer, if one exists.

    A failing visualizer backend only logs a warning: a picture must not cost an evaluation.

    Args:
        name (str): the image tag.
        image (np.ndarray): H x W x 3 uint8 RGB.
        step (int, optional): the step to record; defaults to the runner's current iteration.

    Returns:
        bool: whether the image was handed to a visualizer.
    """
    from mmengine.logging import MessageHub, print_log
    from mmengine.visualization import Visualizer
    # ``get_current_instance`` raises (holding mmengine's manager lock) when none exists.
    if not has_visualizer():
        return False
    try:
        visualizer = Visualizer.get_current_instance()
        if step is None:
            step = MessageHub.get_current_instance().get_info('iter', 0)
        visualizer.add_image(name, image, step=step)
    except Exception as e:  # noqa: BLE001 - a picture must not stop an evaluation
        print_log(f'could not add image {name!r} to the visualizer: {e!r}', logger='current',
                  level=logging.WARNING)
        return False
    return True
