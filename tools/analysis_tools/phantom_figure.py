"""Picture of a phantom slice next to the real CT in ``shared/data`` (README, "Phantom data").

    python tools/analysis_tools/phantom_figure.py [--phantom-root DIR] [--out docs/phantom_vs_real.png]
        [--stats DATA_ROOT] [--update-readme]

With ``--stats DATA_ROOT`` it also prints (and with ``--update-readme`` writes into the README)
the dataset statistics of a generated phantom dataset: studies, fields of view, abnormality
counts and, per finding, the share of its organ's voxels it covers.

Shows an axial slice through the kidneys of the real abdominal CT and of an abdominal phantom
study, each with its organ label map beside it, in a soft-tissue window (W 400, L 40).
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REAL = osp.join(osp.dirname(REPO), 'shared', 'data', 'totalsegmentator')
sys.path.insert(0, REPO)


def axial_through(image, labels, organ_labels):
    """The axial (z) index with the most voxels of the given labels."""
    counts = np.isin(labels, organ_labels).sum(axis=(0, 1))
    return int(np.argmax(counts))


def load_ras(path):
    import nibabel as nib
    img = nib.as_closest_canonical(nib.load(path))
    return np.asarray(img.dataobj), img.header.get_zooms()[:3]


def stats_table(root):
    """Markdown summary of a phantom dataset's ``stats.json``."""
    with open(osp.join(root, 'stats.json')) as f:
        s = json.load(f)
    settings = s['settings']
    lines = [
        f'`python tools/analysis_tools/phantom_figure.py --stats {root}` on the dataset of '
        f'`python tools/make_phantoms.py {root} --num-cases {settings["num_cases"]} --seed '
        f'{settings["seed"]}` (generator {settings["generator_version"]}, '
        f'{settings["spacing"][0]:g} mm voxels): {s["num_cases"]} studies of '
        f'{s["num_patients"]} patients ('
        + ', '.join(f'{k} {v["cases"]}' for k, v in s['splits'].items())
        + f'), {s["abnormal_studies"]} with at least one abnormality, {s["tumor_studies"]} '
        'with a tumor mask; fields of view: '
        + ', '.join(f'{k} {v}' for k, v in s['fields_of_view'].items())
        + f'; reports of {s["report_words"]["min"]:.0f}-{s["report_words"]["max"]:.0f} words '
        f'(mean {s["report_words"]["mean"]:.0f}); every organ of the 104 occurs in at least '
        f'{min(s["organ_frequency"].values())} studies.',
        '',
        '| finding | organ findings | share of the organ\'s voxels: median (min-max) | '
        'lesion - organ HU, mean |',
        '|---|---:|---|---:|']
    share, contrast = s['finding_voxel_share'], s.get('lesion_contrast_hu', {})
    for name in sorted(share, key=lambda n: share[n]['median']):
        v = share[name]
        hu = contrast.get(name, {}).get('mean')
        lines.append(f'| {name} | {v["n"]} | {v["median"]:.4f} ({v["min"]:.4f}-{v["max"]:.4f}) | '
                     + (f'{hu:+.0f}' if hu is not None else '-') + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phantom-root', default='/tmp/ctglip_phantom_figure')
    parser.add_argument('--out', default=osp.join(REPO, 'docs', 'phantom_vs_real.png'))
    parser.add_argument('--stats', help='a phantom dataset folder whose stats.json to tabulate')
    parser.add_argument('--update-readme', action='store_true')
    args = parser.parse_args(argv)
    if args.stats:
        markdown = stats_table(args.stats)
        print(markdown)
        if args.update_readme:
            sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
            from readme_section import update_readme
            update_readme('phantom', markdown)
    from ctglip.datasets.organs import organ_vocabulary, scheme_classes
    if not osp.isfile(osp.join(args.phantom_root, 'manifest.jsonl')):
        from ctglip.datasets.phantom import make_phantom_dataset
        make_phantom_dataset(args.phantom_root, num_cases=12, seed=0, progress=False)
    rows = [json.loads(line) for line in open(osp.join(args.phantom_root, 'manifest.jsonl'))]
    vocab = organ_vocabulary()
    kidneys_v1 = [vocab.index('kidney_left') + 1, vocab.index('kidney_right') + 1]
    v2 = {n: k for k, n in scheme_classes('totalseg_v2').items()}
    kidneys_v2 = [v2['kidney_left'], v2['kidney_right']]

    real_ct, real_zoom = load_ras(osp.join(REAL, 'ct.nii.gz'))
    real_seg, _ = load_ras(osp.join(REAL, 'seg_total_v2.nii.gz'))
    best = max(rows, key=lambda r: np.isin(load_ras(osp.join(args.phantom_root,
                                                             r['organ_mask']))[0],
                                           kidneys_v1).sum())
    ph_ct, ph_zoom = load_ras(osp.join(args.phantom_root, best['image']))
    ph_seg, _ = load_ras(osp.join(args.phantom_root, best['organ_mask']))

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(9, 8))
    for row, (ct, seg, zoom, kid, title) in enumerate([
            (real_ct, real_seg, real_zoom, kidneys_v2, 'real CT (TotalSegmentator test file)'),
            (ph_ct, ph_seg, ph_zoom, kidneys_v1, f'phantom {best["case_id"]}')]):
        z = axial_through(ct, seg, kid)
        # radiological display: patient right on the image left, anterior up
        sl = np.flipud(np.fliplr(ct[:, :, z].T))
        lab = np.flipud(np.fliplr(seg[:, :, z].T))
        aspect = zoom[1] / zoom[0]
        axes[row, 0].imshow(sl, cmap='gray', vmin=-160, vmax=240, aspect=aspect)
        axes[row, 0].set_title(f'{title}, z={z}', fontsize=9)
        axes[row, 1].imshow(np.ma.masked_equal(lab, 0), cmap='tab20', interpolation='nearest',
                            aspect=aspect)
        axes[row, 1].imshow(sl, cmap='gray', vmin=-160, vmax=240, alpha=0.35, aspect=aspect)
        axes[row, 1].set_title('organ label map', fontsize=9)
        for ax in axes[row]:
            ax.axis('off')
    fig.tight_layout()
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
