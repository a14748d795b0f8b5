"""RadGenome-ChestCT -> a manifest folder with organ-level findings: ``python
tools/dataset_converters/radgenome.py OUT --region-reports CSV ... --volumes DIR ... --masks DIR
...`` (layouts and options: docs/vocabularies.md)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ctglip.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert RadGenome-ChestCT into a ctglip manifest folder.')
    parser.add_argument('out', help='the manifest folder to write')
    parser.add_argument('--region-reports', nargs='+', required=True, metavar='CSV',
                        help='radgenome_files/train_region_report.csv, '
                        'validation_region_report.csv (Volumename, Anatomy, Sentence)')
    parser.add_argument('--volumes', nargs='+', required=True, metavar='DIR',
                        help="folders holding CT-RATE's volumes the masks were made on")
    parser.add_argument('--masks', nargs='+', required=True, metavar='DIR',
                        help='folders holding seg_<volume>/<region>.nii.gz '
                        '(train_region_mask, valid_region_mask)')
    parser.add_argument('--labels', nargs='+', default=[], metavar='CSV',
                        help="CT-RATE's multi-abnormality label tables (fills abnormalities)")
    parser.add_argument('--val-fraction', type=float, default=0.05,
                        help="share of CT-RATE's train patients that go to the val split")
    parser.add_argument('--abnormality-vocab', default='ct_rate',
                        help='vocabulary mapping the label columns to organ groups')
    parser.add_argument('--skip-missing', action='store_true',
                        help='skip (and count) volumes without a file, masks or labels')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ctglip.datasets.converters import convert_radgenome
    convert_radgenome(args.out, args.region_reports, args.volumes, args.masks,
                      labels=args.labels, val_fraction=args.val_fraction,
                      abnormality_vocab=args.abnormality_vocab, skip_missing=args.skip_missing)


if __name__ == '__main__':
    sys.exit(run_cli(main))
