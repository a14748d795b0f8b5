"""Export a training checkpoint for sharing (see docs/inference.md)::

    python tools/export.py CKPT OUT [--thresholds FILE]

writes the weights as ``.safetensors`` plus a JSON sidecar with everything inference needs
(model config, organ vocabulary, label scheme, preprocessing, prompt set, temperature,
thresholds, ctglip version, the config text). OUT ending in ``.safetensors`` names the weights
file (the sidecar gets the same name with ``.json``); any other OUT is a folder receiving
``model.safetensors`` and ``model.json``. Loading an export never unpickles anything.

Thresholds: ``--thresholds FILE``, else those ``tools/test.py`` wrote in the checkpoint's work
dir after the checkpoint was saved (``val_calibration/``, then ``test_results/``), else those
the checkpoint stores from validation during training, else none (calls at 0.5).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export a ctglip checkpoint as safetensors '
                                     'weights plus a JSON sidecar.')
    parser.add_argument('checkpoint', help='a .pth written by tools/train.py')
    parser.add_argument('out', help='X.safetensors (sidecar X.json), or a folder')
    parser.add_argument('--thresholds', help='abnormality thresholds JSON to store instead')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from ctglip.apis.model_files import export_model
    from ctglip.utils.errors import CheckpointError
    if not os.path.isfile(args.checkpoint):
        raise CheckpointError(f'checkpoint {args.checkpoint} does not exist. Fix: give a .pth '
                              'file written by tools/train.py (see its work dir).')
    written = export_model(args.checkpoint, args.out, args.thresholds)
    meta = written['meta']
    print(f'weights: {written["weights"]}\nsidecar: {written["sidecar"]}\n'
          f'organs: {len(meta["organ_vocab"])}, spacing {meta["preprocessing"]["spacing_mm"]} mm, '
          f'HU windows {meta["preprocessing"]["hu_windows"]}, temperature '
          f'{meta["temperature"]:.4f}\nthresholds: '
          f'{meta.get("thresholds_source") or "none (calls at 0.5)"}')
    if meta.get('note'):
        print(f'note: {meta["note"]}')


if __name__ == '__main__':
    sys.exit(run_cli(main))
