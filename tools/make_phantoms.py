"""Generate the built-in phantom CT dataset: ``python tools/make_phantoms.py OUT_DIR [options]``.

Writes ``OUT_DIR/manifest.jsonl`` with NIfTI images, TotalSegmentator v1 organ masks, tumour
masks, reports, ``stats.json`` and ``README.txt`` (see ``ctglip.datasets.phantom``).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the phantom CT dataset (manifest format).')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--num-cases',
                        type=int,
                        default=200,
                        help='number of studies (default 200)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--workers', type=int, default=2, help='worker processes (default 2)')
    parser.add_argument('--spacing',
                        type=float,
                        nargs='+',
                        default=[4.0],
                        metavar='MM',
                        help='voxel size in mm: one value or x y z (default 4)')
    parser.add_argument('--fov-mm',
                        type=float,
                        nargs=2,
                        metavar=('X', 'Y'),
                        help='in-plane field of view in mm (default 448 352)')
    parser.add_argument('--abnormal-rate',
                        type=float,
                        default=1.0,
                        help='multiplier of the abnormality rates (default 1)')
    parser.add_argument('--profile',
                        choices=['realistic', 'benchmark', 'tumor'],
                        default='realistic',
                        help='how findings are drawn: realistic sizes and rates (default) or '
                        'benchmark (every finding visible at 5 mm, 15-40%% prevalence) or tumor (benchmark '
                        'with conspicuous liver, pancreatic and renal masses, for fine-tuning)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ctglip.datasets.phantom import make_phantom_dataset
    options = dict(abnormal_rate=args.abnormal_rate, profile=args.profile)
    if args.fov_mm:
        options['fov_mm'] = tuple(args.fov_mm)
    spacing = args.spacing[0] if len(args.spacing) == 1 else tuple(args.spacing)
    t0 = time.time()
    manifest = make_phantom_dataset(args.out_dir,
                                    num_cases=args.num_cases,
                                    seed=args.seed,
                                    num_workers=args.workers,
                                    spacing=spacing,
                                    progress=not args.no_progress,
                                    **options)
    print(f'{args.num_cases} studies in {time.time() - t0:.1f} s: {manifest}')


if __name__ == '__main__':
    sys.exit(run_cli(main))
