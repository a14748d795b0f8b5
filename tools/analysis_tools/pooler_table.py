"""Compare organ poolers inside full CT-GLIP on the benchmark phantom set.

    python tools/analysis_tools/pooler_table.py [--family mit] [--poolers A B ...] [--max-iters N]
        [--out work_dirs/poolers] [--update-readme]

Trains and tests the full CT-GLIP config of one backbone family once per pooler (only
``model.pooler.type`` differs), through the same ``train_and_test`` as
``zeroshot_table.py``, and writes a Markdown table. The winner is chosen on the validation
split (mean zero-shot AD AUC, the split the thresholds are chosen on); test numbers are
reported beside it, not used for the choice.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import zeroshot_table as zt  # noqa: E402

POOLERS = ('OrganMaskPooler', 'OrganMeanMaxPooler', 'OrganGeMPooler', 'AttentionOrganPooler')
SELECT_KEY = 'zeroshot/abn_auc'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--family', default='mit', choices=['mit', 'nnunet'])
    parser.add_argument('--poolers', nargs='+', default=list(POOLERS))
    parser.add_argument('--out', default=osp.join('work_dirs', 'poolers'))
    parser.add_argument('--data-root', default=zt.BENCH_DATA)
    parser.add_argument('--phantom-cases', type=int, default=600)
    parser.add_argument('--phantom-seed', type=int, default=1)
    parser.add_argument('--max-iters', type=int)
    parser.add_argument('--force', action='store_true')
    parser.add_argument('--update-readme', action='store_true')
    return parser.parse_args(argv)


def run_args(args, pooler):
    """The ``zeroshot_table`` arguments of one pooler's run."""
    return argparse.Namespace(
        families=[args.family], variants=['ctglip'], out=osp.join(args.out, pooler),
        data_root=args.data_root, phantom_cases=args.phantom_cases,
        phantom_seed=args.phantom_seed, max_iters=args.max_iters,
        cfg_options=[f'model.pooler.type={pooler}'], force=args.force)


def choose(results):
    """The pooler with the best validation AD AUC (None when no run has one)."""
    scored = {p: m.get('_val', {}).get(SELECT_KEY) for p, m in results.items()}
    scored = {p: v for p, v in scored.items() if v is not None}
    return max(scored, key=scored.get) if scored else None


def table(results, args, best):
    command = (f'python tools/analysis_tools/pooler_table.py --family {args.family}'
               + (f' --max-iters {args.max_iters}' if args.max_iters else ''))
    lines = [
        f'Full CT-GLIP ({args.family}) with each organ pooler on the benchmark phantom set, '
        f'`{command}`. Percent. The choice is made on the validation split (val AD AUC); '
        'test columns as in the zero-shot table.', '',
        '| pooler | val AD AUC | val OR top-1 | test OR top-1 | test AD F1 | test AD AUC | '
        + ' | '.join(f'test AUC {g}' for g in zt.GROUPS) + ' |',
        '|---|---:|---:|---:|---:|---:|' + '---:|' * len(zt.GROUPS)]
    for pooler, m in results.items():
        val = m.get('_val', {})
        name = f'**{pooler}** (chosen)' if pooler == best else pooler
        lines.append(
            f'| {name} | {zt.fmt(val, SELECT_KEY)} | {zt.fmt(val, "zeroshot/organ_top1")} | '
            f'{zt.fmt(m, "zeroshot/organ_top1")} | {zt.fmt(m, "zeroshot/abn_f1", True)} | '
            f'{zt.fmt(m, "zeroshot/abn_auc", True)} | '
            + ' | '.join(zt.fmt(m, f'zeroshot/abn_auc/{g}') for g in zt.GROUPS) + ' |')
    lines += ['', 'Test AD AUC per abnormality (focal findings are the ones a masked mean '
              'dilutes):', '',
              '| abnormality | ' + ' | '.join(results) + ' |',
              '|---|' + '---:|' * len(results)]
    for key in abnormality_keys(results):
        lines.append(f'| {key} | ' + ' | '.join(
            zt.fmt(m, f'zeroshot/abn_auc/{key}') for m in results.values()) + ' |')
    return '\n'.join(lines)


def abnormality_keys(results):
    """``group/abnormality`` of every per-abnormality AUC any run reports, grouped as GROUPS."""
    keys = {k[len('zeroshot/abn_auc/'):] for m in results.values() for k in m
            if k.startswith('zeroshot/abn_auc/') and k.count('/') == 3}
    return [k for g in zt.GROUPS for k in sorted(keys) if k.startswith(f'{g}/')]


def main(argv=None):
    args = parse_args(argv)
    zt.ensure_data(run_args(args, args.poolers[0]))
    results = {}
    for pooler in args.poolers:
        print(f'[{args.family}] ctglip with {pooler}: training and testing ...', flush=True)
        results[pooler] = zt.train_and_test(args.family, 'ctglip', run_args(args, pooler))
    best = choose(results)
    markdown = table(results, args, best)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'pooler_table.md'), 'w') as f:
        f.write(markdown + '\n')
    with open(osp.join(args.out, 'pooler_table.json'), 'w') as f:
        json.dump(dict(results=results, chosen=best), f, indent=2, sort_keys=True)
    print(markdown)
    if args.update_readme:
        from readme_section import update_readme
        update_readme('pooler-table', markdown)


if __name__ == '__main__':
    main()
