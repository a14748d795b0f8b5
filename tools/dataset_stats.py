"""Dataset picture in the manner of the paper's Figure 2: organ frequencies, report word counts,
abnormality counts, as PNG plots and a JSON summary.

    python tools/dataset_stats.py DATA_ROOT [--out DIR] [--splits train test]

Organ frequencies count the studies whose organ mask contains each organ (read with the
manifest's label scheme, mapped to the 104-organ vocabulary); word counts are of the raw
reports and of the per-organ findings of abnormal organs; abnormality counts come from the
manifest's ground truth. Every study's file headers are checked (as training would); image
voxels are not read.
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ctglip.utils.cli import run_cli  # noqa: E402


def collect(root, splits):
    import numpy as np
    from tqdm import tqdm

    from ctglip.datasets import CTReportDataset
    from ctglip.datasets.organs import organ_vocabulary
    from ctglip.datasets.transforms import read_organ_mask
    from ctglip.datasets.transforms.loading import check_mask_not_empty, check_study_headers
    vocab = organ_vocabulary()
    stats = {}
    for split in splits:
        ds = CTReportDataset(root, split=split, pipeline=[], lazy_init=False)
        organs, abnormalities, words, finding_words = Counter(), Counter(), [], []
        for i in tqdm(range(len(ds)), desc=f'{split} studies', unit='study'):
            info = ds.get_data_info(i)
            check_study_headers(info['img_path'], info['mask_path'], info['tumor_path'],
                                info['case_id'])
            mask = read_organ_mask(info['mask_path'], info['label_scheme'], vocab, info['case_id'])
            check_mask_not_empty(mask, info['mask_path'], info['label_scheme'], info['case_id'])
            organs.update(vocab[int(v) - 1] for v in np.unique(np.asarray(mask)) if v)
            words.append(len(info['report'].split()))
            for organ, names in (info['abnormalities'] or {}).items():
                abnormalities.update(names)
            for organ, status in (info['status'] or {}).items():
                if status == 'abnormal':
                    finding_words.append(len(' '.join(info['findings'].get(organ, [])).split()))
        stats[split] = dict(num_studies=len(ds), num_patients=len({ds.get_data_info(i)['patient_id']
                                                                   for i in range(len(ds))}),
                            organ_frequency=dict(organs.most_common()),
                            abnormality_counts=dict(abnormalities.most_common()),
                            report_words=words, abnormal_finding_words=finding_words)
    return stats


def plot(stats, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    splits = list(stats)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ax = axes[0, 0]
    for split in splits:
        ax.hist(stats[split]['report_words'], bins=30, alpha=0.6, label=split)
    ax.set(title='report word count', xlabel='words', ylabel='reports')
    ax.legend()
    ax = axes[0, 1]
    for split in splits:
        ax.hist(stats[split]['abnormal_finding_words'], bins=20, alpha=0.6, label=split)
    ax.set(title='words of abnormal organ findings', xlabel='words', ylabel='organ findings')
    ax.legend()
    ax = axes[1, 0]
    organs = list(stats[splits[0]]['organ_frequency'])
    for k, split in enumerate(splits):
        freq = stats[split]['organ_frequency']
        ax.bar([i + 0.4 * k for i in range(len(organs))], [freq.get(o, 0) for o in organs],
               width=0.4, label=split, log=True)
    ax.set(title='organ frequency (studies containing the organ, log scale)')
    ax.set_xticks(range(len(organs)))
    ax.set_xticklabels(organs, rotation=90, fontsize=4)
    ax.legend()
    ax = axes[1, 1]
    names = sorted({n for s in splits for n in stats[s]['abnormality_counts']})
    for k, split in enumerate(splits):
        counts = stats[split]['abnormality_counts']
        ax.barh([i + 0.4 * k for i in range(len(names))], [counts.get(n, 0) for n in names],
                height=0.4, label=split)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set(title='abnormality counts (organ findings)')
    ax.legend()
    fig.tight_layout()
    path = osp.join(out, 'dataset_stats.png')
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('--out', help='output folder (default: DATA_ROOT/stats)')
    parser.add_argument('--splits', nargs='+', default=['train', 'test'])
    args = parser.parse_args(argv)
    out = args.out or osp.join(args.data_root, 'stats')
    stats = collect(args.data_root, args.splits)  # reads everything before writing anything
    os.makedirs(out, exist_ok=True)
    picture = plot(stats, out)
    summary = {s: {k: v for k, v in d.items() if not isinstance(v, list)} |
               {f'{k}_mean': (sum(v) / len(v) if v else 0.0) for k, v in d.items()
                if isinstance(v, list)} for s, d in stats.items()}
    tmp = osp.join(out, '.dataset_stats.json.tmp')
    with open(tmp, 'w') as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, osp.join(out, 'dataset_stats.json'))
    print(f'wrote {picture} and {osp.join(out, "dataset_stats.json")}')


if __name__ == '__main__':
    sys.exit(run_cli(main))
