"""Run a trained model on your own scans (see docs/inference.md)::

    python tools/infer.py INPUT --checkpoint CKPT --out DIR [--mask MASK] [--prompts FILE]
        [--query TEXT ...] [--device D]

INPUT is a NIfTI file, a DICOM series folder, a folder of cases or a manifest. For each case
``DIR/<case>/`` receives ``predictions.json``, NIfTI overlays on the mask's grid, colour tables
and PNG pictures; ``DIR/predictions.csv`` has one row per (case, organ, abnormality or query)
and ``DIR/run.json`` lists the failed cases. A case that fails is reported and skipped; the
exit code is then 1 (2 when nothing could run).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Organ recognition, abnormality read-outs and free-text queries of a '
                    'CT-GLIP model on NIfTI or DICOM scans.')
    parser.add_argument('input', help='a NIfTI file, a DICOM series folder, a folder of cases '
                        '(NIfTI files and DICOM folders) or a manifest.jsonl')
    parser.add_argument('--checkpoint', required=True,
                        help='a .pth of tools/train.py (trusted files only: it is unpickled) or '
                        'an export of tools/export.py (.safetensors, safe from anyone)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--mask', help='the organ mask (TotalSegmentator --ml output, or its '
                        'folder of per-organ files); for a folder of cases, a folder holding '
                        '<case>.nii.gz. Without it TotalSegmentator runs when installed')
    parser.add_argument('--label-scheme', default='auto',
                        help='the mask\'s labels: totalseg_v2 (TotalSegmentator 2.x), '
                        'totalseg_v1 (1.x), a JSON class map, or auto (default: detected)')
    parser.add_argument('--prompts', help='zero-shot prompt JSON replacing the model\'s')
    parser.add_argument('--query', nargs='+', action='extend', default=[], metavar='TEXT',
                        help='free-text findings to score against every organ, e.g. '
                        '--query "a stone in the gallbladder"')
    parser.add_argument('--thresholds', help='abnormality thresholds JSON replacing the '
                        'model\'s (tools/test.py writes <work_dir>/val_calibration/'
                        'abn_thresholds.json)')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--view', choices=['whole', 'pipeline'], default='whole',
                        help='whole: every organ of the mask in view (default); pipeline: the '
                        'test pipeline\'s crop, as tools/test.py evaluates')
    parser.add_argument('--split', help='with a manifest: only its lines of this split')
    parser.add_argument('--skip-check', nargs='+', action='extend', default=[],
                        choices=['hu', 'laterality'],
                        help='skip an input check that misfires on a scan you know is right')
    parser.add_argument('--no-pictures', action='store_true', help='no PNG pictures')
    return parser.parse_args(argv)


def main(argv=None):
    """Returns 0 when every case ran, 1 when some failed (each reported)."""
    args = parse_args(argv)
    from ctglip.apis import CTGLIPInferencer
    from ctglip.apis.inputs import resolve_cases
    from tqdm import tqdm
    log = lambda message: tqdm.write(message, file=sys.stderr)  # noqa: E731
    cases = resolve_cases(args.input, args.mask, args.label_scheme, args.split)
    inferencer = CTGLIPInferencer(args.checkpoint, device=args.device, prompts=args.prompts,
                                  thresholds=args.thresholds, view=args.view,
                                  skip_checks=args.skip_check, log=log)
    results = inferencer(cases, queries=args.query, out_dir=args.out, skip_errors=True,
                         pictures=not args.no_pictures, progress=len(cases) > 1)
    failed = [r for r in results if 'error' in r]
    done = len(results) - len(failed)
    print(f'{done} of {len(results)} case(s) done -> {args.out}/<case>/predictions.json, '
          f'{args.out}/predictions.csv'
          + (f'; failed: {", ".join(r["case_id"] for r in failed)} (reasons in '
             f'{args.out}/run.json)' if failed else ''))
    if not done:
        return 2
    return 1 if failed else 0


def cli(argv=None):
    """``run_cli`` (one-line errors, exit code 2) around ``main``, keeping its exit code."""
    code = []
    status = run_cli(lambda a: code.append(main(a)), argv)
    return status or (code[0] if code else 0)


if __name__ == '__main__':
    sys.exit(cli())
