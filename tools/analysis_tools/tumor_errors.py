"""Where a tumor segmentor's false positives lie, and what post-processing would remove them.

Reads the predicted masks that ``tools/test.py CONFIG CKPT --out-dir DIR`` wrote
(``DIR/<case>/tumor_mask.nii.gz``, on each input CT's grid) and the studies of the config's
test (or ``--split``) dataset: their organ label maps and true tumor masks. It reports

- the false-positive components (26-connected components of the prediction that touch no
  true tumor voxel): how many, their sizes, and where they lie: in one of the model's
  ``tumor_organs`` (grouped: liver, pancreas, kidney), in another organ (named), or outside
  every organ of the label map;
- a what-if table of test-time post-processing: remove components under ``--min-voxels``
  voxels, and/or keep only predicted voxels within ``--dilate`` voxels of a tumor organ. For
  each: the overall Dice (TumorDice's convention: an empty prediction on an empty truth
  scores 1), the Dice of the studies with a tumor, the tumor-free studies predicted empty,
  and the share of true-positive voxels the rule would delete.

Choose a rule on the validation split (``--split val``), then test with it; the table's
numbers on the test split are a diagnosis, not a result. Only masks are read, so the AUC of the
per-organ tumor probability under a rule is not given (``model.min_tumor_voxels`` in the
config applies the component rule to both).

    python tools/test.py configs/finetune/scratch_nnunet_tumor.py CKPT --out-dir preds
    python tools/analysis_tools/tumor_errors.py configs/finetune/scratch_nnunet_tumor.py preds \\
        [--split test] [--min-voxels 0 20 80] [--dilate 1 2] [--json errors.json]
"""
import argparse
import json
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

LOAD_TYPES = ('LoadCTStudy', 'SelectTumorLabels')  # the loading steps of a tumor pipeline


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the fine-tuning config the predictions were made with')
    parser.add_argument('pred_dir', help='the --out-dir of tools/test.py')
    parser.add_argument('--split', default='test', help="the dataset split (default 'test')")
    parser.add_argument('--data-root', help="a manifest folder (default: the config's)")
    parser.add_argument('--min-voxels', nargs='+', type=int, default=[0, 20, 80],
                        help='component sizes under which the what-if rules remove a '
                        'component (default 0 20 80)')
    parser.add_argument('--dilate', nargs='+', type=int, default=[1, 2],
                        help='voxels around the tumor organs that the organ rule keeps '
                        '(default 1 2)')
    parser.add_argument('--json', help='write the report to this file')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='config overrides, as tools/test.py')
    return parser.parse_args(argv)


def load_steps(transforms):
    """The loading transforms (``LoadCTStudy``, ``SelectTumorLabels``) of a pipeline, looked
    up inside ``CachedPreprocess`` too; the rest (resampling, scaling, cropping) is dropped so
    that the studies stay on their input grid, the grid of the written predictions."""
    steps = []
    for t in transforms:
        if t.get('type') in LOAD_TYPES:
            steps.append(dict(t))
        steps += load_steps(t.get('transforms', []))
    return steps


def dataset_of(args):
    """The config's dataset of ``--split`` with a loading-only pipeline, and the model's
    tumor organs."""
    from mmengine.registry import init_default_scope

    from ctglip.registry import DATASETS
    from ctglip.utils.cli import apply_common_args, load_config
    from ctglip.utils.errors import ConfigError
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, argparse.Namespace(config=args.config, data_root=args.data_root,
                                              work_dir=None, launcher='none'))
    init_default_scope(cfg.get('default_scope', 'ctglip'))
    dataset_cfg = dict(cfg.test_dataloader.dataset)
    steps = load_steps(dataset_cfg.get('pipeline', []))
    if not steps or steps[0]['type'] != 'LoadCTStudy':
        raise ConfigError(f'{args.config}: the test pipeline has no LoadCTStudy, so the organ '
                          'label maps and tumor masks cannot be read. Fix: give a tumor '
                          'fine-tuning config (configs/finetune/).')
    dataset = DATASETS.build(dict(dataset_cfg, split=args.split, pipeline=steps,
                                  test_mode=True))
    from ctglip.models.segmentors.ct_segmentor import DEFAULT_TUMOR_ORGANS
    organs = tuple(cfg.model.get('tumor_organs', DEFAULT_TUMOR_ORGANS))
    vocab = steps[0].get('organ_vocab', 'totalseg_v1')
    return dataset, organs, vocab


def check_predictions(pred_dir, case_ids):
    """Stop before any work when a study of the split has no predicted mask in ``pred_dir``."""
    from ctglip.engine.hooks.tumor_predictions import MASK_FILE
    from ctglip.utils.errors import DataError
    missing = [c for c in case_ids if not osp.exists(osp.join(pred_dir, c, MASK_FILE))]
    if missing:
        raise DataError(f'{pred_dir} has no prediction of {len(missing)} of the {len(case_ids)} '
                        f'studies, e.g. {osp.join(pred_dir, missing[0], MASK_FILE)} (case '
                        f'{missing[0]!r}). Fix: pass the --out-dir of a tools/test.py run on the '
                        'same dataset and split (--split, --data-root).')


def read_prediction(pred_dir, case_id, shape):
    """A case's predicted mask, reoriented to RAS as LoadCTStudy reads the truth."""
    from ctglip.datasets.transforms.loading import _to_ras, read_volume
    from ctglip.engine.hooks.tumor_predictions import MASK_FILE
    from ctglip.utils.errors import DataError
    path = osp.join(pred_dir, case_id, MASK_FILE)
    pred = _to_ras(read_volume(path, case_id, what='prediction')).numpy() > 0
    if pred.shape != tuple(shape):
        raise DataError(f'{path} has shape {pred.shape}, the study {case_id!r} {tuple(shape)}. '
                        'Fix: predictions must come from tools/test.py on this dataset.')
    return pred


def components(mask):
    """``(labels, sizes)`` of the 26-connected components of a boolean volume."""
    import numpy as np
    from scipy import ndimage
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return labels, np.bincount(labels.ravel(), minlength=count + 1)


def dice(pred, gt):
    """TumorDice's per-study Dice: 1 for an empty prediction on an empty truth."""
    from ctglip.evaluation.metrics.tumor import dice_from_counts
    return dice_from_counts(int((pred & gt).sum()), int(pred.sum()), int(gt.sum()))


def apply_rule(pred, labels, sizes, near_organs, min_voxels, dilate):
    """The prediction after removing components under ``min_voxels`` voxels and, with
    ``dilate`` not None, the voxels farther than ``dilate`` from every tumor organ."""
    out = pred
    if min_voxels:
        small = sizes < min_voxels
        small[0] = False
        out = out & ~small[labels]
    if dilate is not None:
        out = out & near_organs[dilate]
    return out


def analyse(args):
    import numpy as np
    from scipy import ndimage
    from tqdm import tqdm

    from ctglip.datasets.organs import organ_group, organ_vocabulary
    dataset, tumor_organs, vocab_name = dataset_of(args)
    vocab = organ_vocabulary(vocab_name)
    tumor_labels = [vocab.index(o) + 1 for o in tumor_organs if o in vocab]
    check_predictions(args.pred_dir,
                      [dataset.get_data_info(i)['case_id'] for i in range(len(dataset))])
    rules = [(m, None) for m in args.min_voxels] + [(m, d) for d in args.dilate
                                                    for m in args.min_voxels]
    per_rule = {rule: [] for rule in rules}
    fp_components = []  # (case, voxels, location)
    tumor_free = 0
    for i in tqdm(range(len(dataset)), desc='studies', unit='study'):
        item = dataset[i]
        case_id = item['case_id']
        organ = np.asarray(item['organ_label'][0]).astype(np.int64)
        gt = np.asarray(item['tumor_mask'][0]) > 0
        pred = read_prediction(args.pred_dir, case_id, organ.shape)
        tumor_free += not gt.any()
        labels, sizes = components(pred)
        for c in range(1, len(sizes)):
            voxels = labels == c
            if (voxels & gt).any():
                continue
            inside = Counter(organ[voxels].tolist())
            label, _ = max(inside.items(), key=lambda kv: (kv[0] != 0, kv[1]))
            if label in tumor_labels:
                where = f'tumor organ: {organ_group(vocab[label - 1])}'
            elif label:
                where = f'other organ: {vocab[label - 1]}'
            else:
                where = 'outside every organ'
            fp_components.append((case_id, int(sizes[c]), where))
        organs_mask = np.isin(organ, tumor_labels)
        near = {d: (ndimage.binary_dilation(organs_mask, np.ones((3, 3, 3), bool), d)
                    if d else organs_mask) for d in args.dilate}
        true_pos = int((pred & gt).sum())
        for rule in rules:
            kept = apply_rule(pred, labels, sizes, near, *rule)
            lost = true_pos - int((kept & gt).sum())
            per_rule[rule].append(dict(dice=dice(kept, gt), tumor=bool(gt.any()),
                                       empty=not kept.any(), tp=true_pos, lost=lost))
    return summarise(fp_components, per_rule, len(dataset), tumor_free, args)


def summarise(fp_components, per_rule, n_studies, tumor_free, args):
    """The report (a dict) and its Markdown."""
    import numpy as np
    places = Counter(where for _, _, where in fp_components)
    voxels = Counter()
    for _, size, where in fp_components:
        voxels[where] += size
    sizes = np.array([size for _, size, _ in fp_components]) if fp_components else np.zeros(0)
    rows = []
    for (min_voxels, dilate), studies in per_rule.items():
        tumor = [s for s in studies if s['tumor']]
        free = [s for s in studies if not s['tumor']]
        tp = sum(s['tp'] for s in studies)
        rows.append(dict(
            min_voxels=min_voxels, dilate=dilate,
            dice=100 * float(np.mean([s['dice'] for s in studies])),
            dice_tumor_studies=100 * float(np.mean([s['dice'] for s in tumor])) if tumor else None,
            tumor_free_empty=sum(s['empty'] for s in free),
            true_positive_lost=100 * sum(s['lost'] for s in studies) / tp if tp else 0.0))
    report = dict(pred_dir=args.pred_dir, split=args.split, studies=n_studies,
                  tumor_free_studies=tumor_free,
                  false_positive_components=len(fp_components),
                  studies_with_false_positives=len({c for c, _, _ in fp_components}),
                  component_voxels=dict(
                      median=float(np.median(sizes)) if len(sizes) else None,
                      max=int(sizes.max()) if len(sizes) else None),
                  by_location={k: dict(components=places[k], voxels=voxels[k])
                               for k in sorted(places, key=lambda k: -voxels[k])},
                  rules=rows)
    lines = [f'{args.pred_dir} ({args.split} split): {n_studies} studies, {tumor_free} tumor free; '
             f'{len(fp_components)} false-positive components in '
             f'{report["studies_with_false_positives"]} studies'
             + (f', median {report["component_voxels"]["median"]:.0f} voxels, largest '
                f'{report["component_voxels"]["max"]}' if len(sizes) else '') + '.', '',
             '| false positives lie | components | voxels |', '|---|---:|---:|']
    lines += [f'| {k} | {v["components"]} | {v["voxels"]} |'
              for k, v in report['by_location'].items()]
    lines += ['', '| post-processing | Dice overall | Dice, tumor studies | tumor-free predicted '
              f'empty (of {tumor_free}) | true-positive voxels lost |', '|---|---:|---:|---:|---:|']
    for r in rows:
        name = []
        if r['min_voxels']:
            name.append(f'components >= {r["min_voxels"]} voxels')
        if r['dilate'] == 0:
            name.append('inside a tumor organ')
        elif r['dilate'] is not None:
            name.append(f'within {r["dilate"]} voxel{"s" * (r["dilate"] > 1)} of a tumor organ')
        tumor_dice = 'n/a' if r['dice_tumor_studies'] is None else f'{r["dice_tumor_studies"]:.1f}'
        lines.append(f'| {", ".join(name) or "none (as tested)"} | {r["dice"]:.1f} | '
                     f'{tumor_dice} | {r["tumor_free_empty"]} | {r["true_positive_lost"]:.1f} % |')
    return report, '\n'.join(lines)


def main(argv=None):
    from ctglip.utils.cli import run_cli
    args = parse_args(argv)

    def work(_argv):
        report, markdown = analyse(args)
        print(markdown)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(report, f, indent=2)
    return run_cli(work)


if __name__ == '__main__':
    sys.exit(main())
