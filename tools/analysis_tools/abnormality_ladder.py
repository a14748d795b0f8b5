"""The abnormality-learning ladder: from hand-made features to the full encoders, with labels.

    python tools/analysis_tools/abnormality_ladder.py --data-root DIR [--iters N]
        [--rungs NAME ...] [--out-dir DIR] [--update-docs]
    python tools/analysis_tools/abnormality_ladder.py --data-root DIR --curve RUNG
        --curve-iters 50 100 300 1000 [--update-readme]

Each rung learns the 16 abnormalities from the same studies, with labels instead of text:
the first two fit a logistic regression on hand-made organ statistics of the input
(``tools/analysis_tools/abnormality_oracle.py``); the others train a model with the supervised
harness (``tools/analysis_tools/abnormality_supervised.py``: the config's pipeline, batch,
optimiser and schedule, a standardised linear head with its own learning rate), swapping the
backbone, the organ pooler and the raw-intensity skip by config. The rung where the test AUC
drops is where the signal is lost. ``--update-docs`` writes the table into
``docs/abnormality_diagnosis.md`` between its ladder markers.

``--curve RUNG`` trains one supervised rung once per ``--curve-iters`` value instead and
writes its learning curve: test AUC against training minutes and distinct training studies
(``--update-readme``: into the README's ``learning-curve`` section).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))

NNUNET = 'configs/ctglip/ctglip_nnunet_104organ.py'
MIT = 'configs/ctglip/ctglip_mit_104organ.py'
SKIP = dict(type='OrganIntensityStats')


def _model(**kwargs):
    return {'model': kwargs}


# name -> (what it is, kind, config, config overrides or oracle features)
RUNGS = {
    'oracle-simple': ('hand-made statistics (mean, spread, percentiles, extremes, size) + '
                      'logistic regression', 'oracle', NNUNET, 'simple'),
    'oracle-stats': ('OrganIntensityStats (HU histograms of organ and interior) + logistic '
                     'regression', 'oracle', NNUNET, 'stats'),
    'identity-mean': ('input as the map, masked mean', 'supervised', NNUNET, _model(
        backbone=dict(_delete_=True, type='IdentityBackbone'),
        pooler=dict(_delete_=True, type='OrganMaskPooler'), intensity_skip=None)),
    'identity-meanmax': ('input as the map, masked mean + max', 'supervised', NNUNET, _model(
        backbone=dict(_delete_=True, type='IdentityBackbone'),
        pooler=dict(_delete_=True, type='OrganMeanMaxPooler'), intensity_skip=None)),
    'identity-skip': ('input as the map, masked mean + intensity skip', 'supervised', NNUNET,
                      _model(backbone=dict(_delete_=True, type='IdentityBackbone'),
                             pooler=dict(_delete_=True, type='OrganMaskPooler'),
                             intensity_skip=SKIP)),
    'conv2-meanmax': ('2 plain conv layers (16 ch, stride 2), masked mean + max', 'supervised',
                      NNUNET, _model(backbone=dict(_delete_=True, type='PlainConv3D'),
                                     pooler=dict(_delete_=True, type='OrganMeanMaxPooler'),
                                     intensity_skip=None)),
    'nnunet': ("nnU-Net small, masked mean (the paper's model)", 'supervised', NNUNET,
               _model(intensity_skip=None)),
    'nnunet-skip': ('nnU-Net small, masked mean + intensity skip', 'supervised', NNUNET,
                    _model(intensity_skip=SKIP)),
    'mit': ("MiT small, masked mean (the paper's model)", 'supervised', MIT,
            _model(intensity_skip=None)),
    'mit-skip': ('MiT small, masked mean + intensity skip', 'supervised', MIT,
                 _model(intensity_skip=SKIP)),
}
DEFAULT_RUNGS = [r for r in RUNGS if not r.startswith('mit')]
# every supervised rung says whether it has the skip: the shipped configs have it on, so a
# rung that does not say so would silently inherit it
assert all('intensity_skip' in v[3]['model'] for v in RUNGS.values() if v[1] == 'supervised')
DOC = osp.join(REPO, 'docs', 'abnormality_diagnosis.md')
MARKERS = ('<!-- ladder-table:start -->', '<!-- ladder-table:end -->')


def run_rung(name, args, out_dir, iters=None):
    """Run one rung and return its summary (the JSON the harness or oracle writes)."""
    _, kind, config, extra = RUNGS[name]
    iters = iters or args.iters
    out = osp.join(out_dir, f'{name}.json' if iters == args.iters else f'{name}_{iters}.json')
    if args.reuse and osp.isfile(out):
        with open(out) as f:
            return json.load(f)
    argv = [osp.join(REPO, config), '--data-root', args.data_root, '--json', out]
    if kind == 'oracle':
        import abnormality_oracle
        summary = abnormality_oracle.main(argv + ['--features', extra])
    else:
        import abnormality_supervised
        argv += ['--iters', str(iters), '--seed', str(args.seed)]
        if args.device:
            argv += ['--device', args.device]
        summary = abnormality_supervised.main(argv, overrides=extra)
    return summary


def table(results, args):
    """Markdown: one row per rung (mean test AUC, train AUC, minutes), then per abnormality."""
    from ctglip.datasets.organs import all_abnormalities
    when = datetime.date.today().isoformat()
    lines = [
        f'`python tools/analysis_tools/abnormality_ladder.py --data-root {args.data_root} '
        f'--iters {args.iters} --rungs {" ".join(results)}` ({when}, {platform.machine()} '
        f'CPU, {os.cpu_count()} cores; device {_device(results)}). Test AUC of each rung with '
        'labels; supervised rungs train from scratch for the stated iterations at batch 4.',
        '',
    ]
    with_train = any((s.get('train') or {}).get('mean_auc') is not None
                     for s in results.values())
    lines += ['| rung | what | mean test AUC |' + (' mean train AUC |' if with_train else '')
              + ' train min |', '|---|---|---:|' + ('---:|' if with_train else '') + '---:|']
    for name, s in results.items():
        train = (s.get('train') or {}).get('mean_auc')
        minutes = s.get('train_minutes')
        lines.append(f'| {name} | {RUNGS[name][0]} | {_pct(s["test"]["mean_auc"])} | '
                     + (f'{_pct(train)} | ' if with_train else '')
                     + f'{"-" if minutes is None else f"{minutes:.1f}"} |')
    lines += ['', '| abnormality | ' + ' | '.join(results) + ' |',
              '|---|' + '---:|' * len(results)]
    for a in all_abnormalities():
        lines.append(f'| {a} | ' + ' | '.join(_pct(s['test']['auc'].get(a))
                                              for s in results.values()) + ' |')
    return '\n'.join(lines)


def curve_table(name, points, args):
    """Markdown: the learning curve of one rung (test AUC vs minutes and distinct studies)."""
    when = datetime.date.today().isoformat()
    lines = [
        f'`python tools/analysis_tools/abnormality_ladder.py --data-root {args.data_root} '
        f'--curve {name} --curve-iters {" ".join(map(str, points))}` ({when}, '
        f'{platform.machine()} CPU, {os.cpu_count()} cores; device {_device(points)}): '
        f'{RUNGS[name][0]}, trained with labels (batch 4); mean test AUC over the 16 '
        'abnormalities.',
        '',
        '| iterations | train min | distinct training studies seen | mean test AUC |',
        '|---:|---:|---:|---:|',
    ]
    for iters, s in points.items():
        seen = min(s['train_studies_seen'], s['train_studies'])
        lines.append(f'| {iters} | {s["train_minutes"]:.1f} | {seen} of {s["train_studies"]} '
                     f'| {_pct(s["test"]["mean_auc"])} |')
    return '\n'.join(lines)


def _device(results):
    devices = {s.get('device') for s in results.values() if s.get('device')}
    return ', '.join(sorted(devices)) or 'cpu'


def _pct(value):
    return '-' if value is None else f'{100 * value:.1f}'


def update_doc(text, path=None):
    path = path or DOC
    with open(path) as f:
        doc = f.read()
    start, end = MARKERS
    if start not in doc or end not in doc:
        raise SystemExit(f'error: {path} has no {start} ... {end} markers. Fix: add them where '
                         'the ladder table belongs.')
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path, 'w') as f:
        f.write(f'{head}{start}\n{text}\n{end}{tail}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', required=True,
                        help='manifest folder (e.g. the benchmark phantom set of '
                        'tools/make_phantoms.py --profile benchmark --spacing 5)')
    parser.add_argument('--iters', type=int, default=300, help='iterations per supervised rung')
    parser.add_argument('--rungs', nargs='+', choices=list(RUNGS), default=DEFAULT_RUNGS,
                        help=f'rungs to run, in order (default: {" ".join(DEFAULT_RUNGS)})')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', help='torch device for the supervised rungs')
    parser.add_argument('--out-dir', default='work_dirs/abnormality_ladder',
                        help='one JSON per rung is written here')
    parser.add_argument('--reuse', action='store_true',
                        help='reuse the JSON of rungs already run in --out-dir')
    parser.add_argument('--update-docs', action='store_true',
                        help=f'write the table into {osp.relpath(DOC, REPO)}')
    parser.add_argument('--curve', choices=[r for r, v in RUNGS.items() if v[1] == 'supervised'],
                        help='learning curve of this rung instead of the ladder')
    parser.add_argument('--curve-iters', nargs='+', type=int, default=[50, 100, 300, 1000])
    parser.add_argument('--update-readme', action='store_true',
                        help='write the learning curve into the README')
    parser.add_argument('--readme-section', default='learning-curve',
                        help='README section (between <!-- NAME:start/end --> markers) that '
                        '--update-readme replaces (default learning-curve)')
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.curve:
        points = {n: run_rung(args.curve, args, args.out_dir, n) for n in args.curve_iters}
        text = curve_table(args.curve, points, args)
        print('\n' + text)
        if args.update_readme:
            sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
            from readme_section import update_readme
            update_readme(args.readme_section, text)
        return points
    results = {}
    for name in args.rungs:
        t0 = time.time()
        print(f'\n=== rung {name}: {RUNGS[name][0]}', flush=True)
        results[name] = run_rung(name, args, args.out_dir)
        print(f'=== rung {name}: mean test AUC {results[name]["test"]["mean_auc"]:.3f} '
              f'({(time.time() - t0) / 60:.1f} min)', flush=True)
    text = table(results, args)
    print('\n' + text)
    if args.update_docs:
        update_doc(text)
    return results


if __name__ == '__main__':
    main()
