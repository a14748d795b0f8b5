"""Reproduce the paper's zero-shot comparison on the built-in phantom data.

For each backbone family and variant (vanilla CLIP, anatomy only, CT-GLIP without dictionary,
full CT-GLIP) this trains the config with its fixed seed, evaluates the last checkpoint with
``tools/test.py`` (abnormality thresholds chosen on the validation split), and writes a
Markdown table in the layout of the paper (organ recognition top-1; abnormality detection F1,
PPV, sensitivity, AUC; per-organ-group AUC), a JSON file of all metrics and a radar plot
per family (copied to ``docs/zeroshot_radar_<family>.png`` with ``--update-readme``).

    python tools/analysis_tools/zeroshot_table.py --families mit [--out work_dirs/zeroshot_table]
        [--max-iters N] [--update-readme]

The benchmark data is the benchmark phantom profile (``data/phantom_benchmark``: 2,400
studies, seed 3, 5 mm voxels, ``make_phantoms.py --profile benchmark``, generated on first
use): every finding has a signature at 5 mm and a prevalence like real report datasets, and
its test split has 34-213 positive organs per abnormality. ``--max-iters`` sets every schedule
to N iterations the same way (the table says so). ``--seeds`` trains every row once per seed
(``randomness.seed``); the table gives the mean and the spread (min-max) over seeds, and a
second table each seed's AUC with its bootstrap interval. Runs that already have metrics in
``--out`` are reused unless ``--force``. Validation-split metrics (the split the
thresholds are chosen on) are kept in each run's ``val_calibration/val_metrics.json``: compare
design choices there, not on test.

The caption states what the runs themselves recorded, never fixed text: the device and date
of each test run (``_run`` in the metrics file that ``tools/test.py --out-metrics`` writes),
the source of the abnormality thresholds (``abn_thresholds_val_calibrated`` /
``abn_thresholds_self_calibrated``) and the bootstrap level (``abn_ci_level``). Reused metrics
from before these were recorded are called out as such; ``--force`` reruns them.
"""
import argparse
import functools
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VARIANTS = (('clip', 'vanilla CLIP (report)'), ('clip-findings', 'vanilla CLIP (findings)'),
            ('anatomy', 'anatomy only'),
            ('ctglip-nodict', 'CT-GLIP w/o dictionary'), ('ctglip', 'CT-GLIP'))
BENCH_DATA = osp.join('data', 'phantom_benchmark')
BENCH_PHANTOM = dict(num_cases=2400, seed=3, spacing=5.0, profile='benchmark')
GROUPS = ('liver', 'gallbladder', 'spleen', 'pancreas', 'kidney', 'lung', 'adrenal_gland')
THRESHOLD_SOURCES = {'val': 'chosen on the validation split of the same run',
                     'self': 'chosen on the test split itself (optimistic)',
                     'given': 'given in the config',
                     None: 'of unrecorded source (metrics from before the source was recorded)'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--families', nargs='+', default=['mit'], choices=['mit', 'nnunet'])
    parser.add_argument('--variants', nargs='+', default=[v for v, _ in VARIANTS])
    parser.add_argument('--out', default=osp.join('work_dirs', 'zeroshot_table'))
    parser.add_argument('--data-root', default=BENCH_DATA,
                        help=f'manifest folder (default {BENCH_DATA}: the benchmark phantom set, '
                        'generated when it holds no manifest)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='train every row once per seed (default: 0)')
    parser.add_argument('--max-iters', type=int, help='shorten every schedule to N iterations')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides for every run')
    parser.add_argument('--force', action='store_true', help='retrain runs that have metrics')
    parser.add_argument('--update-readme', action='store_true')
    parser.add_argument('--readme-section', default='zeroshot-table',
                        help='README section (between <!-- NAME:start/end --> markers) that '
                        '--update-readme replaces (default zeroshot-table)')
    return parser.parse_args(argv)


def ensure_data(args):
    """Generate the benchmark phantom set when ``--data-root`` holds no manifest."""
    root = osp.join(REPO, args.data_root) if not osp.isabs(args.data_root) else args.data_root
    if osp.isfile(osp.join(root, 'manifest.jsonl')):
        return
    if args.data_root != BENCH_DATA:
        raise SystemExit(f'--data-root {args.data_root} holds no manifest.jsonl. Fix: point it '
                         'at a manifest dataset, or leave it out for the benchmark phantom set.')
    sys.path.insert(0, REPO)
    from ctglip.datasets.phantom import make_phantom_dataset
    print(f'generating the benchmark phantom set ({BENCH_PHANTOM}) in {args.data_root} ...',
          flush=True)
    make_phantom_dataset(root, **BENCH_PHANTOM)


def command(args):
    """The command line that reproduces a table (the options that change results)."""
    parts = ['python tools/analysis_tools/zeroshot_table.py', '--families', *args.families]
    if list(args.variants) != [v for v, _ in VARIANTS]:
        parts += ['--variants', *args.variants]
    if args.data_root != BENCH_DATA:
        parts += ['--data-root', args.data_root]
    if list(args.seeds) != [0]:
        parts += ['--seeds', *map(str, args.seeds)]
    if args.max_iters:
        parts += ['--max-iters', str(args.max_iters)]
    if args.cfg_options:
        parts += ['--cfg-options', *args.cfg_options]
    return ' '.join(parts)


def run(cmd, log):
    with open(log, 'a') as f:
        f.write(f'$ {" ".join(cmd)}\n')
        f.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f'command failed ({proc.returncode}), see {log}: {" ".join(cmd)}')


def train_and_test(family, variant, args, seed=0):
    config = f'configs/ctglip/{variant}_{family}_104organ.py'
    work = osp.join(args.out, f'{variant}_{family}' + (f'_seed{seed}' if seed else ''))
    metrics_file = osp.join(work, 'metrics.json')
    if osp.isfile(metrics_file) and not args.force:
        expected = args.max_iters or config_iters(config)
        done = checkpoint_iters(osp.join(work, 'last_checkpoint'))
        if done is not None and done != expected:
            raise SystemExit(
                f'error: {work} is a {done}-iteration run, but this table trains {expected} '
                f'iterations ({config}{" and --max-iters" if args.max_iters else ""}). Fix: '
                f'--max-iters {done} to tabulate those runs, --out DIR for a new folder, or '
                '--force to retrain.')
        with open(metrics_file) as f:
            return with_val_metrics(json.load(f), work)
    os.makedirs(work, exist_ok=True)
    log = osp.join(work, 'benchmark.log')
    common = ['--work-dir', work, '--data-root', args.data_root]
    options = list(args.cfg_options) + [f'randomness.seed={seed}']
    if args.max_iters:
        options.append(f'train_cfg.max_iters={args.max_iters}')
    t0 = time.time()
    # no validation while training: tools/test.py runs the validation split anyway (it
    # chooses the thresholds there), so the benchmark evaluates each split once
    run([sys.executable, 'tools/train.py', config] + common
        + ['--cfg-options'] + options + [f'train_cfg.val_begin={10 ** 9}'], log)
    train_s = time.time() - t0
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    run([sys.executable, 'tools/test.py', config, ckpt, '--out-metrics', metrics_file] + common
        + (['--cfg-options'] + options if options else []), log)
    with open(metrics_file) as f:
        metrics = json.load(f)
    metrics['_train_seconds'] = train_s
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return with_val_metrics(metrics, work)


@functools.lru_cache(maxsize=None)
def config_iters(config):
    """The training iterations a config's schedule gives (each config is read once)."""
    sys.path.insert(0, REPO)
    from ctglip.utils.cli import load_config
    return int(load_config(osp.join(REPO, config)).train_cfg.max_iters)


def checkpoint_iters(last_checkpoint):
    """The iterations of a run from its ``last_checkpoint`` (mmengine's ``iter_<N>.pth``), or
    None where the file is missing or names another kind of checkpoint."""
    if not osp.isfile(last_checkpoint):
        return None
    with open(last_checkpoint) as f:
        found = re.fullmatch(r'iter_(\d+)\.pth', osp.basename(f.read().strip()))
    return int(found.group(1)) if found else None


def with_val_metrics(metrics, work):
    """Add the validation-split metrics of a run (``_val``), where tools/test.py wrote them."""
    val_file = osp.join(work, 'val_calibration', 'val_metrics.json')
    if osp.isfile(val_file):
        with open(val_file) as f:
            metrics['_val'] = json.load(f)
    return metrics


def fmt(metrics, key, ci=False):
    value = metrics.get(key)
    if value is None:
        return 'n/a'
    text = f'{100 * value:.1f}'
    lo, hi = metrics.get(f'{key}_ci_low'), metrics.get(f'{key}_ci_high')
    if ci and lo is not None and hi is not None:
        text += f' ({100 * lo:.0f}-{100 * hi:.0f})'
    return text


def fmt_seeds(runs, key, ci=False):
    """One seed: the value (with its bootstrap interval); several: mean (min-max over seeds).
    Where only some of the seeds have the value, the cell names them."""
    if len(runs) == 1:
        return fmt(runs[0], key, ci)
    have = [m for m in runs if m.get(key) is not None]
    values = [m[key] for m in have]
    if not values:
        return 'n/a'
    if len(have) < len(runs):
        if len(values) == 1:
            return f'{100 * values[0]:.1f} ({seeds_named(have)})'
        return (f'{100 * sum(values) / len(values):.1f} '
                f'({100 * min(values):.1f}-{100 * max(values):.1f}, {seeds_named(have)})')
    return (f'{100 * sum(values) / len(values):.1f} '
            f'({100 * min(values):.1f}-{100 * max(values):.1f})')


def seeds_named(runs):
    """'seed 0' or 'seeds 0, 2': the seeds of some runs, for a cell not all seeds have."""
    seeds = [str(m.get('_seed', '?')) for m in runs]
    return f'seed{"s" if len(seeds) > 1 else ""} {", ".join(seeds)}'


def mean_of(runs, key):
    values = [m[key] for m in runs if m.get(key) is not None]
    return sum(values) / len(values) if values else None


def claims(results):
    """Lines on the paper's AD claims per family: F1 order, margin over CLIP, AUC intervals."""
    lines = []
    for family in dict.fromkeys(k[0] for k in results):
        rows = {variant: runs for (fam, variant, _), runs in results.items() if fam == family}
        f1 = {v: mean_of(r, 'zeroshot/abn_f1') for v, r in rows.items()}
        clip = [v for v in ('clip', 'clip-findings') if f1.get(v) is not None]
        order = ['ctglip', 'ctglip-nodict', 'anatomy']
        if not clip or any(f1.get(v) is None for v in order):
            continue
        best_clip = max(clip, key=f1.get)
        chain = [f1[v] for v in order] + [f1[best_clip]]
        holds = all(a > b for a, b in zip(chain, chain[1:]))
        margin = 100 * (f1['ctglip'] - f1[best_clip])
        text = (f'- {family}: the paper\'s AD F1 order (CT-GLIP > w/o dictionary > anatomy only > '
                f'CLIP) {"holds" if holds else "does not hold"} in the mean over seeds '
                f'({" > ".join(f"{100 * v:.1f}" for v in chain)}, CLIP = the better CLIP row); '
                f'CT-GLIP - CLIP = {margin:+.1f} F1 points (paper: about +15).')
        full = rows['ctglip']
        above = [all((m.get('zeroshot/abn_auc_ci_low') or 0) >
                     max((c.get('zeroshot/abn_auc_ci_high') or 1) for v in clip for c in rows[v])
                     for m in [run]) for run in full]
        text += (f' CT-GLIP\'s AD AUC interval lies above the intervals of both CLIP rows in '
                 f'{sum(above)} of {len(above)} seed(s).')
        lines.append(text)
    return lines


def threshold_source(metrics, prefix='zeroshot'):
    """Where a run's abnormality thresholds came from: 'val', 'self', 'given' or None.

    Read from the metric keys ``abn_thresholds_val_calibrated`` (chosen on the validation
    split in the same ``tools/test.py`` run) and ``abn_thresholds_self_calibrated`` (chosen on
    the test split itself); None where the metrics predate the first of these keys.
    """
    if metrics.get(f'{prefix}/abn_thresholds_val_calibrated') == 1:
        return 'val'
    if metrics.get(f'{prefix}/abn_thresholds_self_calibrated') == 1:
        return 'self'
    if f'{prefix}/abn_thresholds_val_calibrated' in metrics:
        return 'given'
    return None


def bootstrap_skipped(metrics, prefix='zeroshot'):
    """``(skipped, total)`` bootstrap resamples of a run's AD intervals; (0, 0) if unrecorded."""
    skipped = metrics.get(f'{prefix}/abn_bootstrap_skipped', 0)
    return skipped, skipped + metrics.get(f'{prefix}/abn_bootstrap_used', 0)


def _span(values):
    values = sorted(set(values))
    return values[0] if len(values) == 1 else f'{values[0]} to {values[-1]}'


def caption(results, args):
    """The table's caption, from what the runs recorded (device, date, thresholds, bootstrap)."""
    where = ('the benchmark phantom set' if args.data_root == BENCH_DATA
             else f'`{args.data_root}`')
    runs = {(family, name, i): m for (family, _, name), seeds in results.items()
            for i, m in enumerate(seeds)}
    records = [m.get('_run') or {} for m in runs.values()]
    recorded = [r for r in records if r.get('date') and r.get('device')]
    if recorded:
        devices = dict.fromkeys(r['device'] for r in recorded)
        measured = (f'measured {_span(r["date"][:10] for r in recorded)} on '
                    f'{" and ".join(devices)}')
    else:
        measured = 'measured on an unrecorded date and device'
    if len(recorded) < len(records):
        measured += (f' ({len(records) - len(recorded)} of {len(records)} runs reused metrics '
                     'from before tools/test.py recorded the device and date; rerun them with '
                     '--force)')
    sources = {}
    for (family, name, _), m in runs.items():
        sources.setdefault(threshold_source(m), []).append(f'{family} {name}')
    if len(sources) == 1:
        thresholds = f'thresholds {THRESHOLD_SOURCES[next(iter(sources))]}'
    else:
        thresholds = 'thresholds ' + '; '.join(
            f'{THRESHOLD_SOURCES[s]} for {", ".join(runs)}' for s, runs in sources.items())
    sources = {k: list(dict.fromkeys(v)) for k, v in sources.items()}
    levels = sorted({m['zeroshot/abn_ci_level'] for m in runs.values()
                     if m.get('zeroshot/abn_ci_level') is not None})
    interval = (f'bootstrap {" / ".join(f"{100 * lv:g}%" for lv in levels)} intervals'
                if levels else 'bootstrap intervals (level not recorded)')
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from ctglip.evaluation.metrics.zeroshot_abnormality import MAX_SKIPPED_FRACTION
    skipping = [f'{family} {name} ({skipped:.0f} of {total:.0f})'
                for (family, name, _), m in runs.items()
                for skipped, total in [bootstrap_skipped(m)]
                if skipped > MAX_SKIPPED_FRACTION * total]
    skipped = (' Bootstrap resamples in which an abnormality has one class absent are skipped; '
               f'more than {100 * MAX_SKIPPED_FRACTION:g}% were in: {", ".join(skipping)}.'
               if skipping else '')
    seeds = (f' Each row is the mean (min-max) over seeds {", ".join(map(str, args.seeds))}; '
             'the intervals of each seed are in the second table.'
             if len(args.seeds) > 1 else '')
    return (f'Zero-shot results on the test split of {where}, {measured}, with '
            f'`{command(args)}`. Percent; abnormality detection (AD) metrics are macro over the '
            f'evaluable abnormalities with {interval}; {thresholds}.{skipped}{seeds}')


def table(results, args):
    """Markdown: the main table, per-seed AUC intervals (several seeds), per-group AUC, claims."""
    lines = [
        caption(results, args),
        '',
        '| backbone | model | OR top-1 | OR top-5 | AD F1 | AD PPV | AD sensitivity | AD AUC | '
        'train min |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for (family, variant, name), runs in results.items():
        minutes = mean_of(runs, '_train_seconds') or 0
        lines.append(
            f'| {family} | {name} | {fmt_seeds(runs, "zeroshot/organ_top1")} | '
            f'{fmt_seeds(runs, "zeroshot/organ_top5")} | '
            f'{fmt_seeds(runs, "zeroshot/abn_f1", True)} | '
            f'{fmt_seeds(runs, "zeroshot/abn_ppv", True)} | '
            f'{fmt_seeds(runs, "zeroshot/abn_sensitivity", True)} | '
            f'{fmt_seeds(runs, "zeroshot/abn_auc", True)} | {minutes / 60:.0f} |')
    if len(args.seeds) > 1:
        lines += ['', 'AD AUC and AD F1 of each seed with its bootstrap interval:', '',
                  '| backbone | model | '
                  + ' | '.join(f'seed {s} AUC | seed {s} F1' for s in args.seeds) + ' |',
                  '|---|---|' + '---:|---:|' * len(args.seeds)]
        for (family, variant, name), runs in results.items():
            lines.append(f'| {family} | {name} | ' + ' | '.join(
                f'{fmt(m, "zeroshot/abn_auc", True)} | {fmt(m, "zeroshot/abn_f1", True)}'
                for m in runs) + ' |')
    lines += ['', 'Per-organ-group AD AUC' + (' (mean over seeds)' if len(args.seeds) > 1
                                              else '') + ':', '',
              '| backbone | model | ' + ' | '.join(GROUPS) + ' |',
              '|---|---|' + '---:|' * len(GROUPS)]
    for (family, variant, name), runs in results.items():
        lines.append(f'| {family} | {name} | '
                     + ' | '.join(fmt_seeds(runs, f'zeroshot/abn_auc/{g}') .split(' (')[0]
                                  for g in GROUPS) + ' |')
    found = claims(results)
    if found:
        lines += ['', 'The paper\'s abnormality-detection claims, as measured here:', ''] + found
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    names = dict(VARIANTS)
    ensure_data(args)
    results = {}
    for family in args.families:
        for variant in args.variants:
            for seed in args.seeds:
                print(f'[{family}] {variant} seed {seed}: training and testing ...', flush=True)
                results.setdefault((family, variant, names[variant]), []).append(
                    train_and_test(family, variant, args, seed))
    markdown = table(results, args)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'zeroshot_table.md'), 'w') as f:
        f.write(markdown + '\n')
    with open(osp.join(args.out, 'zeroshot_table.json'), 'w') as f:
        json.dump({f'{k[0]}/{k[1]}': v for k, v in results.items()}, f, indent=2, sort_keys=True)
    sys.path.insert(0, REPO)
    from ctglip.visualization.plots import plot_radar
    for family in args.families:
        radar = {name: {g: mean_of(runs, f'zeroshot/abn_auc/{g}') for g in GROUPS
                        if mean_of(runs, f'zeroshot/abn_auc/{g}') is not None}
                 for (fam, _, name), runs in results.items() if fam == family}
        plot_radar(radar, path=osp.join(args.out, f'radar_{family}.png'),
                   title=f'Zero-shot AD AUC per organ group ({family})')
    print(markdown)
    if args.update_readme:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from readme_section import update_readme
        update_readme(args.readme_section, markdown)
        for family in args.families:  # the README shows the radar plots from docs/
            shutil.copyfile(osp.join(args.out, f'radar_{family}.png'),
                            osp.join(REPO, 'docs', f'zeroshot_radar_{family}.png'))


if __name__ == '__main__':
    main()
