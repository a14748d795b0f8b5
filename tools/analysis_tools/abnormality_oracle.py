"""How much abnormality signal the model's input carries: a hand-crafted-feature ceiling.

    python tools/analysis_tools/abnormality_oracle.py CONFIG [--data-root DIR]

For every organ of the 7-organ abnormality vocabulary in every study, it takes the voxels under
the organ mask of the image exactly as the model sees it at test time (the config's test
pipeline: resampling, HU window, centre crop) and computes simple statistics (mean, spread,
percentiles, extremes, size). A logistic regression per abnormality, fit on the training split
and scored on the test split, gives the AUC that these few features reach. No network, no text.

It answers one question: when zero-shot abnormality detection is near chance, is the signal
already gone from the input (resolution, window, crop) or does the model fail to pick it up?

``--features stats`` uses the statistics of ``OrganIntensityStats`` instead (HU histograms of
the organ and its interior, counts, mean and spread), the same numbers that the model's
raw-intensity skip appends to the pooled features; ``both`` concatenates the two sets.
``context`` adds to ``both`` the mean intensity of a few reference organs of the same study
(aorta, portal vein, spleen, liver, kidneys): the contrast phase and the scanner's calibration
move every organ's HU, and a density finding (steatosis, a cyst against enhancing parenchyma)
is only separable from that shift relative to the other organs, as a radiologist reads it.
"""
import argparse
import os.path as osp
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

FEATURES = ('mean', 'std', 'p1', 'p5', 'p50', 'p95', 'p99', 'min', 'max', 'log_voxels')
REFERENCE_ORGANS = ('aorta', 'portal_vein_and_splenic_vein', 'spleen', 'liver', 'kidney_left',
                    'kidney_right')


def organ_features(values):
    p = np.percentile(values, [1, 5, 50, 95, 99])
    return [values.mean(), values.std(), *p, values.min(), values.max(), np.log(values.size)]


def units(dataset, features='simple', window=(-1000.0, 1000.0)):
    """(abnormality, organ, features, label) for every evaluable organ of every study."""
    import torch
    from tqdm import tqdm

    from ctglip.datasets.organs import ABNORMALITIES, organ_group
    from ctglip.models.poolers.intensity import OrganIntensityStats
    names = dataset.organ_vocab
    skip = OrganIntensityStats(window=window)
    out = []
    for i in tqdm(range(len(dataset)), desc=f'{dataset.split} split', unit='study'):
        item = dataset[i]
        image = item['inputs'][0].numpy()
        sample = item['data_samples']
        label = sample.organ_label.numpy()
        truth = sample.get('abnormalities') or {}
        context = []
        if features == 'context':
            for ref in REFERENCE_ORGANS:
                inside = label == names.index(ref) + 1
                context += ([float(image[inside].mean()), 1.0] if inside.any() else [0.0, 0.0])
        if features != 'simple':
            stats = skip(item['inputs'][None].float(), sample.organ_label[None].long(),
                         len(names))[0].numpy()
        for k in np.unique(label):
            if k == 0:
                continue
            organ = names[int(k) - 1]
            group = organ_group(organ)
            if group is None:
                continue
            values = image[label == k]
            if values.size < 2:
                continue
            feats = [] if features == 'stats' else organ_features(values)
            if features != 'simple':
                feats = feats + list(stats[int(k) - 1])
            feats = feats + context
            for abnormality in ABNORMALITIES[group]:
                out.append((abnormality, organ, feats, abnormality in truth.get(organ, [])))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--data-root')
    parser.add_argument('--no-crop', action='store_true',
                        help='drop the centre crop of the test pipeline (whole study)')
    parser.add_argument('--features', choices=['simple', 'stats', 'both', 'context'],
                        default='simple', help='simple statistics (default), OrganIntensityStats, '
                        'both, or both plus reference-organ means of the study (context)')
    parser.add_argument('--json', help='write the per-abnormality AUCs here')
    args = parser.parse_args(argv)
    from mmengine.config import Config
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import ctglip.datasets  # noqa: F401
    from ctglip.datasets.organs import all_abnormalities
    from ctglip.registry import DATASETS
    cfg = Config.fromfile(args.config)
    data = {}
    for split in ('train', 'test'):
        ds_cfg = cfg.test_dataloader.dataset.copy()
        ds_cfg.split = split
        if args.no_crop:
            ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] != 'CenterPadCrop']
        if args.data_root:
            ds_cfg.data_root, ds_cfg.phantom = args.data_root, None
        data[split] = units(DATASETS.build(ds_cfg), args.features, hu_window(cfg))
    print(f'input of {osp.basename(args.config)}: features {args.features}\n')
    print('| abnormality | train units (pos) | test units (pos) | oracle AUC |')
    print('|---|---:|---:|---:|')
    aucs, table = [], {}
    for abnormality in all_abnormalities():
        tr = [u for u in data['train'] if u[0] == abnormality]
        te = [u for u in data['test'] if u[0] == abnormality]
        ytr = np.array([u[3] for u in tr], dtype=int)
        yte = np.array([u[3] for u in te], dtype=int)
        if len(set(ytr)) < 2 or len(set(yte)) < 2:
            print(f'| {abnormality} | {len(ytr)} ({ytr.sum()}) | {len(yte)} ({yte.sum()}) | n/a |')
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(
            max_iter=5000, class_weight='balanced', C=1.0))
        clf.fit(np.array([u[2] for u in tr]), ytr)
        auc = roc_auc_score(yte, clf.decision_function(np.array([u[2] for u in te])))
        aucs.append(auc)
        table[abnormality] = float(auc)
        print(f'| {abnormality} | {len(ytr)} ({ytr.sum()}) | {len(yte)} ({yte.sum()}) '
              f'| {auc:.3f} |')
    print(f'\nmean oracle AUC {np.mean(aucs):.3f} over {len(aucs)} abnormalities')
    summary = dict(config=args.config, features=args.features, mean_auc=float(np.mean(aucs)),
                   test=dict(mean_auc=float(np.mean(aucs)), auc=table))
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


def hu_window(cfg):
    """The (a_min, a_max) HU window of the config's ScaleIntensityRanged (or the default)."""
    def walk(transforms):
        for t in transforms:
            if t.get('type') == 'ScaleIntensityRanged':
                return (float(t['a_min']), float(t['a_max']))
            found = walk(t.get('transforms', []))
            if found:
                return found
        return None
    return walk(cfg.test_dataloader.dataset.pipeline) or (-1000.0, 1000.0)


if __name__ == '__main__':
    main()
