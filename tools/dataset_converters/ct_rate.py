"""CT-RATE -> a manifest folder: ``python tools/dataset_converters/ct_rate.py OUT --root CT-RATE
--masks MASKS`` (layouts, the TotalSegmentator command and options: docs/vocabularies.md)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ctglip.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Convert CT-RATE into a ctglip manifest folder.')
    parser.add_argument('out', help='the manifest folder to write')
    parser.add_argument('--root', help="CT-RATE's download folder (holding dataset/); fills "
                        'the three options below')
    parser.add_argument('--volumes', nargs='+', default=[], metavar='DIR',
                        help='folders holding the volumes (default: dataset/train_fixed and '
                        'dataset/valid_fixed, else dataset/train and dataset/valid)')
    parser.add_argument('--reports', nargs='+', default=[], metavar='CSV',
                        help='reports tables (default: dataset/radiology_text_reports/*.csv)')
    parser.add_argument('--labels', nargs='+', default=[], metavar='CSV',
                        help='multi-abnormality label tables (default: '
                        'dataset/multi_abnormality_labels/*_predicted_labels.csv)')
    parser.add_argument('--masks', required=True, metavar='DIR',
                        help='TotalSegmentator output: <DIR>/<volume>.nii.gz (--ml) or '
                        '<DIR>/<volume>/ (one file per organ)')
    parser.add_argument('--label-scheme', default='totalseg_v2',
                        help='totalseg_v2 (TotalSegmentator 2.x, default), totalseg_v1 or a '
                        'class map JSON')
    parser.add_argument('--val-fraction', type=float, default=0.05,
                        help="share of CT-RATE's train patients that go to the val split")
    parser.add_argument('--abnormality-vocab', default='ct_rate',
                        help='vocabulary mapping the label columns to organ groups')
    parser.add_argument('--no-mask-read', action='store_true',
                        help='read mask headers only (faster; no organs-per-study counts; '
                        'findings go on every organ of their group)')
    parser.add_argument('--skip-missing', action='store_true',
                        help='skip (and count) volumes without a file, mask, report or labels')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ctglip.datasets.converters import convert_ct_rate
    convert_ct_rate(args.out, root=args.root, volumes=args.volumes, reports=args.reports,
                    labels=args.labels, masks=args.masks, label_scheme=args.label_scheme,
                    val_fraction=args.val_fraction, abnormality_vocab=args.abnormality_vocab,
                    read_masks=not args.no_mask_read, skip_missing=args.skip_missing)


if __name__ == '__main__':
    sys.exit(run_cli(main))
