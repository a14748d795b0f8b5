"""Pictures of one case's read-out: axial and coronal slices with organ outlines coloured by
abnormality probability, and bar charts of the abnormality and query probabilities.

Slices are shown in the radiological convention (patient's right on the viewer's left,
anterior and superior at the top) with the true aspect ratio of the voxels. matplotlib is
drawn on an Agg canvas (no display needed), as in ``ctglip.visualization.plots``.
"""
import numpy as np

from ctglip.datasets.organs import readable_name
from ctglip.visualization.plots import _finish, _new_figure

SOFT_TISSUE_WINDOW = (-160.0, 240.0)  # HU shown black..white
CMAP = 'plasma'
FOOTNOTE = 'ctglip zero-shot read-out; research use only, not a diagnosis'


def _slice_with_most(mask, axis):
    """Index along ``axis`` where ``mask`` covers the most voxels (the middle if empty)."""
    other = tuple(a for a in range(3) if a != axis)
    area = mask.sum(axis=other)
    return int(np.argmax(area)) if area.any() else mask.shape[axis] // 2


def _crop_to_organs(image, label, margin=0.1):
    """Image and labels cut to the organs' bounding box plus a margin, in x and y only
    (the scanner table and air around the body take half of a full field of view)."""
    found = np.nonzero(label > 0)
    if not len(found[0]):
        return image, label, (0, 0)
    box = []
    for axis in (0, 1):
        low, high = int(found[axis].min()), int(found[axis].max()) + 1
        pad = max(int(margin * (high - low)), 5)
        box.append(slice(max(low - pad, 0), min(high + pad, label.shape[axis])))
    return image[box[0], box[1]], label[box[0], box[1]], (box[0].start, box[1].start)


def draw_slices(image, label, spacing, organ_probs, title, path=None, affine=None):
    """Axial and coronal slices through the organ with the highest abnormality probability.

    Args:
        image (np.ndarray): X x Y x Z CT in HU, RAS voxel axes.
        label (np.ndarray): X x Y x Z organ labels (vocabulary indices) on the same grid.
        spacing (Sequence[float]): voxel size in mm along X, Y, Z.
        organ_probs (dict): ``{label index: (organ name, probability or None)}`` of the organs
            with a read-out; outlines of the others are drawn thin and grey.
        title (str): the figure title.
        path (str, optional): where to save the PNG.
        affine (np.ndarray, optional): the RAS voxel-to-world matrix; the panels then give
            their position in world mm (``S`` and ``A``, as 3D Slicer shows it).

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.
    """
    import matplotlib
    from matplotlib import cm, colors
    cmap = matplotlib.colormaps[CMAP]
    image, label, (x0, y0) = _crop_to_organs(image, label)
    scored = {k: v for k, v in organ_probs.items() if v[1] is not None}
    if scored:
        focus = max(scored, key=lambda k: scored[k][1])
        focus_mask, focus_name = label == focus, scored[focus][0]
    else:
        focus_mask, focus_name = label > 0, 'all organs'
    z = _slice_with_most(focus_mask, 2)
    y = _slice_with_most(focus_mask, 1)
    # axial above coronal, one width (both span x): heights follow the scan's extent in mm
    extent = [image.shape[a] * spacing[a] for a in range(3)]
    heights = [max(extent[1], 1e-3), max(extent[2], 1e-3)]
    panel_width = 5.5
    fig = _new_figure((panel_width + 1.8,
                       1.5 + panel_width * min(sum(heights) / extent[0], 3.0)))
    axes = fig.subplots(2, 1, gridspec_kw=dict(height_ratios=heights, hspace=0.15))
    if affine is not None:
        world = np.asarray(affine, dtype=float) @ np.array([x0, y0 + y, z, 1.0])
        where = (f'S {world[2]:.0f} mm', f'A {world[1]:.0f} mm')
    else:
        where = (f'slice {z}', f'row {y0 + y}')
    views = (('axial', image[:, :, z], label[:, :, z], spacing[1] / spacing[0], where[0]),
             ('coronal', image[:, y, :], label[:, y, :], spacing[2] / spacing[0], where[1]))
    for ax, (name, pixels, labels, aspect, where) in zip(axes, views):
        # rows: y (axial) or z (coronal), bottom to top; columns: x flipped, so the patient's
        # right (+x in RAS) is on the viewer's left
        pixels, labels = pixels.T[:, ::-1], labels.T[:, ::-1]
        ax.imshow(pixels, cmap='gray', vmin=SOFT_TISSUE_WINDOW[0], vmax=SOFT_TISSUE_WINDOW[1],
                  origin='lower', aspect=aspect, interpolation='bilinear')
        for k in np.unique(labels):
            if k == 0:
                continue
            prob = organ_probs.get(int(k), (None, None))[1]
            color, width = ((cmap(prob), 1.6) if prob is not None else ((0.6, 0.6, 0.6), 0.5))
            ax.contour(labels == k, levels=[0.5], colors=[color], linewidths=width,
                       origin='lower')
        ax.set_title(f'{name} ({where})', fontsize=9, pad=3)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.01, 0.5, 'R', transform=ax.transAxes, color='w', fontsize=11, va='center')
        ax.text(0.97, 0.5, 'L', transform=ax.transAxes, color='w', fontsize=11, va='center')
    mappable = cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap=cmap)
    bar = fig.colorbar(mappable, ax=list(axes), fraction=0.05, pad=0.03)
    bar.set_label('abnormality probability (highest of the organ)')
    focus_name = readable_name(focus_name) if scored else focus_name
    fig.suptitle(f'{title}\nslices through the {focus_name}; grey outlines: organs without '
                 'abnormality prompts', fontsize=10)
    fig.text(0.01, 0.01, FOOTNOTE, fontsize=7, color='0.4')
    return _finish(fig, path)


def draw_abnormality_bars(rows, title, path=None):
    """Horizontal bars of abnormality probabilities with their thresholds.

    Args:
        rows (list[tuple]): ``(label, probability, threshold, call, calibrated)`` from top
            to bottom.
        title (str): the figure title.
        path (str, optional): where to save the PNG.

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.
    """
    n = max(len(rows), 1)
    fig = _new_figure((8, 1.6 + 0.28 * n))
    ax = fig.add_axes([0.42, 0.9 / (1.6 + 0.28 * n) + 0.02, 0.54,
                       1 - 1.4 / (1.6 + 0.28 * n)])
    positions = np.arange(len(rows))[::-1]
    probs = [r[1] for r in rows]
    colours = ['tab:red' if r[3] else 'tab:blue' for r in rows]
    ax.barh(positions, probs, color=colours, height=0.7)
    for pos, (_, _, threshold, _, calibrated) in zip(positions, rows):
        if threshold is not None:
            ax.plot([threshold, threshold], [pos - 0.42, pos + 0.42], color='k', lw=1.2,
                    linestyle='-' if calibrated else ':')
    ax.set_yticks(positions)
    ax.set_yticklabels([r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel('probability (zero-shot); red: called positive; tick: calibrated '
                  'threshold (dotted: 0.5, none calibrated)', fontsize=8)
    ax.set_title(title, fontsize=10)
    if not rows:
        ax.text(0.5, 0.5, 'no organ with abnormality prompts in this mask', ha='center',
                transform=ax.transAxes)
    fig.text(0.01, 0.01, FOOTNOTE, fontsize=7, color='0.4')
    return _finish(fig, path)


def draw_query_bars(queries, title, path=None, top=8):
    """For each free-text query, the organs that match it best (probability against the
    organ's "no abnormality" prompts).

    Args:
        queries (dict): ``{query: [(organ, probability, similarity), ...]}`` best first.
        title (str): the figure title.
        path (str, optional): where to save the PNG.

    Returns:
        np.ndarray: the picture, H x W x 3 uint8.
    """
    n = max(len(queries), 1)
    fig = _new_figure((8, 0.6 + 2.4 * n))
    axes = np.atleast_1d(fig.subplots(n, 1))
    for ax, (query, ranking) in zip(axes, queries.items()):
        ranking = ranking[:top]
        positions = np.arange(len(ranking))[::-1]
        ax.barh(positions, [r[1] for r in ranking], color='tab:purple', height=0.7)
        ax.set_yticks(positions)
        ax.set_yticklabels([readable_name(r[0]) for r in ranking], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(f'"{query}"', fontsize=9)
    axes[-1].set_xlabel('probability of the query against "no abnormality" (zero-shot)',
                        fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.35, right=0.97, hspace=0.6)
    fig.text(0.01, 0.005, FOOTNOTE, fontsize=7, color='0.4')
    return _finish(fig, path)
