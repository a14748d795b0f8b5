"""Reproduce the paper's fine-tuning comparison (Figure 5) on the phantom tumor set.

For each backbone family this pretrains vanilla CLIP and CT-GLIP once (or reuses a pretraining
run that has a ``last_checkpoint``), fine-tunes the three initialisations (from scratch, from
the CLIP encoder, from the CT-GLIP encoder) with every seed of ``--seeds``, tests each with
``tools/test.py`` (``--out-metrics``, ``--out-dir``), and writes a Markdown table in the layout of
Figure 5 (tumor detection AUC and tumor segmentation Dice, per organ and overall, both
backbones; mean and min-max over seeds), a JSON file of all metrics and a picture: one test
case with the truth and the three predictions overlaid (``docs/finetune_example.png`` with
``--update-readme``; ``docs/finetune_example_<family>.png`` for a README section
``finetune-table-<family>``).

    python tools/analysis_tools/finetune_table.py --families nnunet mit --seeds 0 1 2
        [--out work_dirs/finetune_table] [--pretrain-dir DIR] [--max-iters N]
        [--update-readme --readme-section finetune-table]

Runs: pretraining configs ``configs/ctglip/{clip,ctglip}_<family>_104organ.py`` (their work dirs
are ``<pretrain-dir>/<config name>``; ``--pretrain-dir work_dirs`` reuses the runs of
``python tools/train.py configs/ctglip/...``, and ``--pretrain-dir work_dirs/zeroshot_table
--pretrain-name '{variant}_{family}'`` the seed-0 runs of the zero-shot table), fine-tuning configs
``configs/finetune/{scratch,clip,ctglip}_<family>_tumor.py`` with
``model.backbone.init_cfg.checkpoint`` pointed at the pretraining run, in
``<out>/<init>_<family>_seed<s>``. Every fine-tuning run uses the same schedule; runs with a
``metrics.json`` are reused unless ``--force``. ``--scratch-check`` (on by default) adds one
scratch run with twice the iterations (first seed): if it beats the scratch row clearly, the
schedule has not converged and the scratch row is no lower bound (the table says so).

The caption states what the runs recorded: device and date of each test run, the fine-tuning
and pretraining iterations, the numbers of test studies.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from zeroshot_table import (_span, checkpoint_iters, config_iters, fmt_seeds,  # noqa: E402
                            mean_of, run, seeds_named)

INITS = (('scratch', 'scratch'), ('clip', 'vanilla CLIP'), ('ctglip', 'CT-GLIP'))
PRETRAINED = {'clip': 'clip', 'ctglip': 'ctglip'}  # init -> pretraining variant
PRETRAIN_CONFIG = 'configs/ctglip/{variant}_{family}_104organ.py'
FINETUNE_CONFIG = 'configs/finetune/{init}_{family}_tumor.py'
ORGANS = ('liver', 'pancreas', 'kidney')
PAPER = 'paper: CT-GLIP - CLIP = +1.9 AUC, +3.2 Dice on average'
CHANCE_AUC = 0.6  # a scratch run under this AUC has not learnt the tumors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--families', nargs='+', default=['nnunet', 'mit'])
    parser.add_argument('--inits', nargs='+', default=[i for i, _ in INITS],
                        choices=[i for i, _ in INITS])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='fine-tune every row once per seed (default: 0 1 2)')
    parser.add_argument('--family-seeds', nargs='+', default=[], metavar='FAMILY=S[,S...]',
                        help="other seeds for one family, e.g. 'mit=0' to run the slower "
                        'family once per row (the caption says so)')
    parser.add_argument('--out', default=osp.join('work_dirs', 'finetune_table'))
    parser.add_argument('--pretrain-dir', help='pretraining work dirs <DIR>/<config name>; a '
                        'run with last_checkpoint is reused (default: <out>/pretrain)')
    parser.add_argument('--pretrain-name', default='{config}',
                        help="a pretraining run's folder in --pretrain-dir ({config}: the config "
                        "name; '{variant}_{family}' finds the zero-shot table's runs)")
    parser.add_argument('--pretrain-max-iters', type=int,
                        help='pretraining iterations (default: the config\'s)')
    parser.add_argument('--pretrain-data-root', help='pretraining manifest folder (default: the '
                        "config's, the phantom set generated on first use)")
    parser.add_argument('--pretrain-cfg-options', nargs='+', default=[],
                        help='extra overrides for every pretraining run, applied after the '
                        "script's own (seed 0): e.g. randomness.seed=1 for another "
                        'pretraining seed (with its own --pretrain-dir)')
    parser.add_argument('--data-root', help='fine-tuning manifest folder with tumor masks '
                        "(default: the config's phantom tumor set, generated on first use)")
    parser.add_argument('--max-iters', type=int, help='fine-tuning iterations of every run')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides for every fine-tuning run')
    parser.add_argument('--pretrain-config', default=PRETRAIN_CONFIG,
                        help='pretraining config template ({variant}, {family})')
    parser.add_argument('--finetune-config', default=FINETUNE_CONFIG,
                        help='fine-tuning config template ({init}, {family})')
    parser.add_argument('--scratch-check', action=argparse.BooleanOptionalAction, default=True,
                        help='one extra scratch run with twice the iterations (first seed)')
    parser.add_argument('--force', action='store_true', help='rerun runs that have metrics')
    parser.add_argument('--update-readme', action='store_true')
    parser.add_argument('--readme-section', default='finetune-table',
                        help='README section (between <!-- NAME:start/end --> markers) that '
                        '--update-readme replaces (default finetune-table)')
    parser.add_argument('--readme', help=argparse.SUPPRESS)  # tests: another README file
    parser.add_argument('--docs-dir', default=osp.join(REPO, 'docs'),
                        help='where --update-readme copies the picture (default docs/)')
    args = parser.parse_args(argv)
    args.seeds_of = {}
    for item in args.family_seeds:
        family, _, seeds = item.partition('=')
        try:
            args.seeds_of[family] = [int(x) for x in seeds.split(',') if x]
        except ValueError:
            parser.error(f'--family-seeds {item!r}: use FAMILY=S[,S...], e.g. mit=0')
        if family not in args.families or not args.seeds_of[family]:
            parser.error(f'--family-seeds {item!r}: {family!r} is not one of --families '
                         f'{args.families}, or no seed is given')
    return args


def family_seeds(args, family):
    return args.seeds_of.get(family, args.seeds) if hasattr(args, 'seeds_of') else args.seeds


def command(args):
    """The command line that reproduces a table (the options that change results)."""
    parts = ['python tools/analysis_tools/finetune_table.py', '--families', *args.families]
    if list(args.inits) != [i for i, _ in INITS]:
        parts += ['--inits', *args.inits]
    parts += ['--seeds', *map(str, args.seeds)]
    if getattr(args, 'family_seeds', None):
        parts += ['--family-seeds', *args.family_seeds]
    for flag in ('pretrain_dir', 'pretrain_max_iters', 'pretrain_data_root', 'data_root',
                 'max_iters'):
        if getattr(args, flag):
            parts += [f'--{flag.replace("_", "-")}', str(getattr(args, flag))]
    if args.pretrain_name != '{config}':
        parts += ['--pretrain-name', args.pretrain_name]
    for flag in ('pretrain_config', 'finetune_config'):
        if getattr(args, flag) != globals()[flag.upper()]:
            parts += [f'--{flag.replace("_", "-")}', getattr(args, flag)]
    if args.pretrain_cfg_options:
        parts += ['--pretrain-cfg-options', *args.pretrain_cfg_options]
    if args.cfg_options:
        parts += ['--cfg-options', *args.cfg_options]
    if not args.scratch_check:
        parts.append('--no-scratch-check')
    return ' '.join(parts)


def _abs(path):
    return None if path is None else osp.abspath(path)


def pretrain(family, variant, args):
    """Pretrain one variant (or reuse its run); returns ``(last_checkpoint file, minutes)``."""
    config = args.pretrain_config.format(variant=variant, family=family)
    name = args.pretrain_name.format(config=osp.splitext(osp.basename(config))[0],
                                     variant=variant, family=family)
    work = osp.join(_abs(args.pretrain_dir or osp.join(args.out, 'pretrain')), name)
    last = osp.join(work, 'last_checkpoint')
    record = osp.join(work, 'pretrain_seconds.json')
    if osp.isfile(last) and not (args.force and args.pretrain_dir is None):
        seconds = None
        if osp.isfile(record):
            with open(record) as f:
                seconds = json.load(f).get('seconds')
        check_pretraining_length(last, config, args)
        print(f'[{family}] reusing pretraining {last}', flush=True)
        return last, seconds
    os.makedirs(work, exist_ok=True)
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work]
    if args.pretrain_data_root:
        cmd += ['--data-root', _abs(args.pretrain_data_root)]
    # the user's overrides come last, so they win (e.g. ``randomness.seed=1`` for a second
    # pretraining run)
    options = ['randomness.seed=0', f'train_cfg.val_begin={10 ** 9}']
    if args.pretrain_max_iters:
        options.append(f'train_cfg.max_iters={args.pretrain_max_iters}')
    options += list(args.pretrain_cfg_options)
    print(f'[{family}] pretraining {config} ...', flush=True)
    t0 = time.time()
    run(cmd + ['--cfg-options'] + options, osp.join(work, 'benchmark.log'))
    seconds = time.time() - t0
    with open(record, 'w') as f:
        json.dump(dict(seconds=seconds, config=config), f)
    return last, seconds


def check_pretraining_length(last, config, args):
    """Stop if a reused pretraining run is not as long as this table's pretraining (a config
    whose schedule changed since, or a ``--cfg-options train_cfg.max_iters=...`` run in the same
    folder would otherwise enter the table under the config's name)."""
    done = checkpoint_iters(last)
    expected = args.pretrain_max_iters or config_iters(config)
    if done is not None and done != expected:
        raise SystemExit(
            f'error: {osp.dirname(last)} is a {done}-iteration pretraining, but this table '
            f'pretrains for {expected} iterations ({config}'
            f'{" and --pretrain-max-iters" if args.pretrain_max_iters else ""}). Fix: rerun '
            f'the pretraining (python tools/train.py {config} --work-dir '
            f'{osp.dirname(last)}), or --pretrain-dir DIR for a new folder.')


def pretrained_record(checkpoint):
    """What a fine-tune run records of its pretraining checkpoint (file and time written),
    found as the fine-tuning finds it (a moved work dir's last_checkpoint names an old path)."""
    sys.path.insert(0, REPO)
    from ctglip.models.segmentors.pretrained import resolve_checkpoint
    ckpt = osp.realpath(resolve_checkpoint(checkpoint))
    return dict(checkpoint=ckpt, mtime=osp.getmtime(ckpt))


def check_pretraining_unchanged(metrics, metrics_file, checkpoint):
    """Stop if a reused fine-tune run started from another pretraining than the current one."""
    now = pretrained_record(checkpoint)
    then = metrics.get('_pretrained')
    if then is not None:
        stale = then['checkpoint'] != now['checkpoint'] or abs(then['mtime'] - now['mtime']) > 1
    else:  # recorded before the pretraining was written down: a run older than its checkpoint
        stale = osp.getmtime(metrics_file) < now['mtime']
    if stale:
        raise SystemExit(
            f'error: {metrics_file} was fine-tuned from another pretraining than '
            f'{now["checkpoint"]} (rerun or rewritten since). Fix: --force to fine-tune it '
            'again from the current checkpoint, or --out DIR for a new folder.')


def finetune_and_test(family, init, seed, args, checkpoint=None, iters_factor=1, tag=''):
    """Fine-tune one initialisation with one seed and test it; returns its metrics."""
    config = args.finetune_config.format(init=init, family=family)
    work = osp.join(_abs(args.out), f'{init}_{family}_seed{seed}{tag}')
    metrics_file = osp.join(work, 'metrics.json')
    iters = (args.max_iters or config_iters(config)) * iters_factor
    if osp.isfile(metrics_file) and not args.force:
        with open(metrics_file) as f:
            metrics = json.load(f)
        if metrics.get('_max_iters') is None:  # recorded before the schedule was written down
            metrics['_max_iters'] = iters
        if metrics['_max_iters'] != iters:
            raise SystemExit(
                f'error: {metrics_file} is a {metrics["_max_iters"]}-iteration run, but this '
                f'table asks for {iters} iterations ({config}'
                f'{" and --max-iters" if args.max_iters else ""}). Fix: --out DIR for a new '
                'folder, or --force to retrain it.')
        if checkpoint is not None:
            check_pretraining_unchanged(metrics, metrics_file, checkpoint)
        return dict(metrics, _work=work)
    os.makedirs(work, exist_ok=True)
    log = osp.join(work, 'benchmark.log')
    common = ['--work-dir', work] + (['--data-root', _abs(args.data_root)]
                                     if args.data_root else [])
    options = list(args.cfg_options) + [f'randomness.seed={seed}']
    if checkpoint is not None:
        options.append(f'model.backbone.init_cfg.checkpoint={checkpoint}')
    if iters != config_iters(config):
        options.append(f'train_cfg.max_iters={iters}')
    t0 = time.time()
    # no validation while training: the benchmark evaluates the last checkpoint on test
    run([sys.executable, 'tools/train.py', config] + common
        + ['--cfg-options'] + options + [f'train_cfg.val_begin={10 ** 9}'], log)
    train_s = time.time() - t0
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    t0 = time.time()
    run([sys.executable, 'tools/test.py', config, ckpt, '--out-metrics', metrics_file,
         '--out-dir', osp.join(work, 'predictions')] + common + ['--cfg-options'] + options, log)
    with open(metrics_file) as f:
        metrics = json.load(f)
    metrics.update(_train_seconds=train_s, _test_seconds=time.time() - t0,
                   _max_iters=iters, _config=config,
                   _pretrained=None if checkpoint is None else pretrained_record(checkpoint))
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return dict(metrics, _work=work)


def _fmt(runs, key):
    return fmt_seeds(runs, key) if runs else 'n/a'


def gains(results, args):
    """Lines: per family, CT-GLIP - CLIP and pretrained - scratch, in AUC and Dice points."""
    lines = []
    for family in args.families:
        rows = {init: results.get((family, init)) for init, _ in INITS}

        def diff(a, b, key):
            va, vb = mean_of(rows[a] or [], key), mean_of(rows[b] or [], key)
            return None if va is None or vb is None else 100 * (va - vb)
        parts = []
        for a, b, label in (('ctglip', 'clip', 'CT-GLIP - CLIP'),
                            ('ctglip', 'scratch', 'CT-GLIP - scratch'),
                            ('clip', 'scratch', 'CLIP - scratch')):
            auc, dice = diff(a, b, 'tumor/auc'), diff(a, b, 'tumor/dice')
            if auc is not None and dice is not None:
                parts.append(f'{label} = {auc:+.1f} AUC, {dice:+.1f} Dice')
        if parts:
            lines.append(f'- {family}: ' + '; '.join(parts) + f' (points, mean over seeds; '
                         f'{PAPER}).')
        check = results.get((family, 'scratch-2x'))
        base = [m for m in rows['scratch'] or []
                if m.get('_seed') == family_seeds(args, family)[0]]
        keys = ('tumor/auc', 'tumor/dice')
        if check and base and all(m.get(k) is not None for m in (check[0], base[0])
                                  for k in keys):
            d_auc, d_dice = (100 * (check[0][k] - base[0][k]) for k in keys)
            converged = d_auc < 2 and d_dice < 2
            if max(check[0]['tumor/auc'], base[0]['tumor/auc']) < CHANCE_AUC:
                verdict = (f'scratch has not learnt the tumors at either length (AUC under '
                           f'{100 * CHANCE_AUC:.0f}), so it is no lower bound: the rows of this '
                           'backbone compare runs that barely learn.')
            elif converged:
                verdict = ('it gains less than 2 points, so the scratch row is a converged '
                           'lower bound.')
            elif d_auc < 2:
                verdict = ('converged in AUC (under 2 points), NOT in Dice: scratch still '
                           'segments better with more iterations, so the Dice gaps above are '
                           'between runs short of their end point.')
            else:
                verdict = ('NOT converged: scratch still improves with more iterations, so the '
                           'gaps above are between runs short of their end point.')
            studies = check[0].get('tumor/dice_num_studies')
            if studies:  # the overall Dice moves in steps of one study
                verdict += (f' (One test study moves the overall Dice by {100 / studies:.1f} '
                            'points: a tumor-free study scores 0 with a single predicted voxel.')
                parts = [m.get('_dice_parts') for m in (base[0], check[0])]
                if None not in parts and parts[0]['tumor_dice'] is not None:
                    a, b = parts
                    verdict += (f' Tumor-free studies predicted empty: {a["clean"]} -> '
                                f'{b["clean"]} of {b["free"]}; mean Dice of the studies with a '
                                f'tumor: {100 * a["tumor_dice"]:.1f} -> '
                                f'{100 * b["tumor_dice"]:.1f}.')
                verdict += ')'
            lines.append(f'- {family}: scratch with twice the iterations (seed '
                         f'{family_seeds(args, family)[0]}): '
                         f'{d_auc:+.1f} AUC, {d_dice:+.1f} Dice against the same seed on the '
                         'schedule; ' + verdict)
    return lines


def caption(results, args):
    runs = [m for seeds in results.values() for m in seeds]
    records = [m.get('_run') or {} for m in runs]
    dated = [r for r in records if r.get('date') and r.get('device')]
    measured = (f'measured {_span(r["date"][:10] for r in dated)} on '
                f'{" and ".join(dict.fromkeys(r["device"] for r in dated))}'
                if dated else 'measured on an unrecorded date and device')
    where = f'`{args.data_root}`' if args.data_root else 'the phantom tumor set'
    studies = sorted({int(m['tumor/dice_num_studies']) for m in runs
                      if m.get('tumor/dice_num_studies') is not None})
    iters = {}  # family -> the schedules of its rows (the scratch check aside)
    for (family, init), seeds in results.items():
        if init != 'scratch-2x':
            iters.setdefault(family, set()).update(m['_max_iters'] for m in seeds
                                                    if m.get('_max_iters'))
    iters = {family: sorted(its) for family, its in iters.items() if its}
    if not iters:
        schedule = "the config's fine-tuning schedule"
    elif len({tuple(its) for its in iters.values()}) == 1:
        schedule = f'{_span(next(iter(iters.values())))} fine-tuning iterations (batch 2)'
    else:
        schedule = 'fine-tuning iterations (batch 2): ' + ', '.join(
            f'{family} {_span(its)}' for family, its in iters.items())
    if any(key[1] == 'scratch-2x' for key in results):
        schedule += ' and twice that for the scratch check'
    pre = (f'pretraining {args.pretrain_max_iters} iteration(s)' if args.pretrain_max_iters else
           "the pretraining configs' schedules")
    minutes = [(m.get('_train_seconds', 0) + m.get('_test_seconds', 0)) / 60 for m in runs
               if m.get('_train_seconds')]
    timing = (f' One fine-tune + test took {_span([round(m, 1) for m in minutes])} min.'
              if minutes else '')

    def seeds_text(seeds):
        return (f'mean (min-max) over seeds {", ".join(map(str, seeds))}'
                if len(seeds) > 1 else f'seed {seeds[0]}')
    seeds = seeds_text(args.seeds)
    if getattr(args, 'seeds_of', None):
        seeds = '; '.join(f'{f}: {seeds_text(family_seeds(args, f))}' for f in args.families)
    return (f'Tumor fine-tuning on the test split of {where} ({"/".join(map(str, studies))} '
            f'studies), {measured}, with `{command(args)}`; {schedule}, {pre}.{timing} '
            f'Percent, {seeds}. Detection: AUC of the per-organ tumor probability (from the '
            'predicted mask) over (study, organ) units, per organ group and pooled (overall). '
            'Segmentation: Dice per study (an empty prediction on an empty truth counts as '
            '1), per organ within its mask over the studies that show it, and the mean over '
            'studies (overall); the overall Dice in two parts: the mean over the studies with '
            'a tumor, and the share of tumor-free studies predicted empty (each scores 1, or '
            '0 with a single predicted voxel).')


def table(results, args):
    """Markdown: the Figure-5-style table, then the gains and the convergence check."""
    names = dict(INITS)
    results = {key: [with_dice_parts(m) for m in runs] for key, runs in results.items()}
    head = (['AUC ' + o for o in ORGANS] + ['AUC overall'] + ['Dice ' + o for o in ORGANS]
            + ['Dice overall', 'Dice, tumor studies', 'tumor-free predicted empty',
               'fine-tune min'])
    lines = [caption(results, args), '', '| backbone | initialisation | ' + ' | '.join(head)
             + ' |', '|---|---|' + '---:|' * len(head)]
    for (family, init), runs in results.items():
        label = names.get(init, 'scratch, 2x iterations' if init == 'scratch-2x' else init)
        timed = [m for m in runs if m.get('_train_seconds')]
        minutes = mean_of(timed, '_train_seconds')
        if minutes and len(timed) < len(runs):  # e.g. seeds trained elsewhere
            minutes_cell = f'{minutes / 60:.1f} ({seeds_named(timed)})'
        else:
            minutes_cell = f'{minutes / 60:.1f}' if minutes else 'n/a'
        cells = ([_fmt(runs, f'tumor/auc/{o}') for o in ORGANS] + [_fmt(runs, 'tumor/auc')]
                 + [_fmt(runs, f'tumor/dice/{o}') for o in ORGANS] + [_fmt(runs, 'tumor/dice')]
                 + [_fmt(runs, 'tumor/dice_tumor_studies'), _fmt(runs, 'tumor/empty_clean')]
                 + [minutes_cell])
        lines.append(f'| {family} | {label} | ' + ' | '.join(cells) + ' |')
    found = gains(results, args)
    if found:
        lines += ['', 'The paper\'s fine-tuning claims, as measured here:', ''] + found
    lines += ['', '![one test case: the true tumor and the three predictions]'
              f'(docs/{picture_name(args.readme_section)})']
    return '\n'.join(lines)


def picture_name(section):
    """The picture's file name in docs/ for a README section: ``finetune_example.png`` for
    ``finetune-table``, ``finetune_example_<rest>.png`` for ``finetune-table-<rest>`` (e.g. one
    section per backbone family), so that two sections do not overwrite one picture."""
    rest = section[len('finetune-table'):].strip('-') if section.startswith(
        'finetune-table') else section
    return 'finetune_example' + (f'_{rest.replace("-", "_")}' if rest else '') + '.png'


def example_case(results, args):
    """The test case with the largest true tumor that every plotted run predicted, with its
    CT, truth and the runs' predicted masks; None when there is none."""
    import nibabel as nib
    import numpy as np
    first = args.seeds[0]
    plotted = {(family, init): [m for m in runs if m.get('_seed') == first]
               for (family, init), runs in results.items() if init != 'scratch-2x'}
    plotted = {k: v[0] for k, v in plotted.items() if v}
    if not plotted:
        return None
    case_sets = []
    for m in plotted.values():
        folder = osp.join(m['_work'], 'predictions')
        case_sets.append(set(os.listdir(folder)) if osp.isdir(folder) else set())
    common = set.intersection(*case_sets)
    best = None
    for case in sorted(common):
        with open(osp.join(next(iter(plotted.values()))['_work'], 'predictions', case,
                           'tumor_probabilities.json')) as f:
            record = json.load(f)
        truth_path = _truth_path(record['image'], case)
        if truth_path is None:
            continue
        truth = np.asarray(nib.load(truth_path).dataobj) > 0
        if best is None or truth.sum() > best[1]:
            best = (case, int(truth.sum()), record['image'], truth)
    if best is None:
        return None
    case, _, image_path, truth = best
    image = np.asarray(nib.load(image_path).dataobj, dtype=np.float32)
    k = int(np.argmax(truth.sum((0, 1))))  # the axial slice with the most tumor
    masks = {key: np.asarray(nib.load(osp.join(m['_work'], 'predictions', case,
                                               'tumor_mask.nii.gz')).dataobj)[:, :, k] > 0
             for key, m in plotted.items()}
    return dict(case=case, slice=k, image=np.clip(image[:, :, k], -160, 240),
                truth=truth[:, :, k], masks=masks)


def _truth_path(image_path, case):
    """The true tumor mask of a case, from the manifest next to its image."""
    root = osp.dirname(osp.dirname(image_path))
    manifest = osp.join(root, 'manifest.jsonl')
    if not osp.isfile(manifest):
        return None
    with open(manifest) as f:
        for line in f:
            row = json.loads(line) if line.strip() else {}
            if row.get('case_id') == case and row.get('tumor_mask'):
                return osp.join(root, row['tumor_mask'])
    return None


def with_dice_parts(metrics):
    """A run's metrics with the two parts of its overall Dice (:func:`dice_parts`) as
    ``tumor/dice_tumor_studies`` and ``tumor/empty_clean`` (fractions) and the counts as
    ``_dice_parts``, where its predictions are on disk."""
    parts = dice_parts(metrics['_work']) if metrics.get('_work') else None
    if not parts:
        return metrics
    clean = parts['clean'] / parts['free'] if parts['free'] else None
    return dict(metrics, _dice_parts=parts, **{'tumor/dice_tumor_studies': parts['tumor_dice'],
                                               'tumor/empty_clean': clean})


def dice_parts(work):
    """The two parts of a run's overall Dice, from its predictions folder: the share of
    tumor-free test studies predicted empty (each scores 1, or 0 with a single voxel) and the
    mean Dice over the studies with a tumor; None without predictions."""
    import nibabel as nib
    import numpy as np
    folder = osp.join(work, 'predictions')
    if not osp.isdir(folder):
        return None
    free, clean, dices = 0, 0, []
    for case in sorted(os.listdir(folder)):
        with open(osp.join(folder, case, 'tumor_probabilities.json')) as f:
            record = json.load(f)
        pred = np.asarray(nib.load(osp.join(folder, case, 'tumor_mask.nii.gz')).dataobj) > 0
        truth_path = _truth_path(record['image'], case)
        truth = (np.asarray(nib.load(truth_path).dataobj) > 0 if truth_path
                 else np.zeros_like(pred))
        if truth.shape != pred.shape:
            raise SystemExit(f'error: {folder}/{case}: predicted mask {pred.shape} and true '
                             f'mask {truth.shape} differ in shape; rerun tools/test.py.')
        if truth.any():
            dices.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
        else:
            free, clean = free + 1, clean + int(not pred.any())
    return dict(free=free, clean=clean, tumor_dice=float(np.mean(dices)) if dices else None)


def draw_example(results, args, path):
    """Draw the example case (rows: families; panels: truth and each initialisation)."""
    example = example_case(results, args)
    if example is None:
        print('no test case with a tumor in every run: no picture', flush=True)
        return None
    sys.path.insert(0, REPO)
    from ctglip.visualization.plots import plot_mask_overlays
    names = dict(INITS)
    families = [f for f in args.families if any((f, i) in example['masks'] for i in args.inits)]
    rows = []
    for family in families:
        row = {'truth': example['truth']}
        row.update({names[i]: example['masks'].get((family, i)) for i in args.inits})
        rows.append(row)
    plot_mask_overlays(example['image'], rows, path=path, row_names=families,
                       outline=example['truth'],
                       title=f'{example["case"]}, axial slice {example["slice"]} (seed '
                             f'{args.seeds[0]}; dashed: truth)')
    return path


def main(argv=None):
    args = parse_args(argv)
    results = {}
    for family in args.families:
        checkpoints = {}
        for init in args.inits:
            variant = PRETRAINED.get(init)
            if variant and variant not in checkpoints:
                checkpoints[variant] = pretrain(family, variant, args)[0]
        for init in args.inits:
            for seed in family_seeds(args, family):
                print(f'[{family}] {init} seed {seed}: fine-tuning and testing ...', flush=True)
                metrics = finetune_and_test(family, init, seed, args,
                                            checkpoints.get(PRETRAINED.get(init)))
                results.setdefault((family, init), []).append(dict(metrics, _seed=seed))
        if args.scratch_check and 'scratch' in args.inits:
            first = family_seeds(args, family)[0]
            print(f'[{family}] scratch, 2x iterations, seed {first} ...', flush=True)
            metrics = finetune_and_test(family, 'scratch', first, args,
                                        iters_factor=2, tag='_2x')
            results[(family, 'scratch-2x')] = [dict(metrics, _seed=first)]
    markdown = table(results, args)
    out = _abs(args.out)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'finetune_table.md'), 'w') as f:
        f.write(markdown + '\n')
    with open(osp.join(out, 'finetune_table.json'), 'w') as f:
        json.dump({f'{k[0]}/{k[1]}': v for k, v in results.items()}, f, indent=2,
                  sort_keys=True)
    picture = draw_example(results, args, osp.join(out, 'finetune_example.png'))
    print(markdown)
    if args.update_readme:
        from readme_section import README, update_readme
        update_readme(args.readme_section, markdown, readme=args.readme or README)
        if picture:
            os.makedirs(args.docs_dir, exist_ok=True)
            shutil.copyfile(picture, osp.join(args.docs_dir, picture_name(args.readme_section)))


if __name__ == '__main__':
    main()
