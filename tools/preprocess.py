"""Fill the preprocessing cache of a config's datasets up front, with worker processes.

``python tools/preprocess.py CONFIG [--data-root DIR] [--workers N]``: runs every study of the
train, val and test datasets through the pipeline once, so that ``CachedPreprocess`` stores
it; training then reads the cached arrays instead of decoding and resampling NIfTI.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import apply_common_args, load_config, run_cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Fill the preprocessing cache of a config.')
    parser.add_argument('config')
    parser.add_argument('--data-root', help='point every dataloader at this manifest folder')
    parser.add_argument('--workers', type=int, default=2, help='worker processes')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    args.work_dir = None
    apply_common_args(cfg, args)

    import torch
    from tqdm import tqdm

    from ctglip.registry import DATASETS
    seen = set()
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is None:
            continue
        dataset = DATASETS.build(cfg[key]['dataset'])
        loader = torch.utils.data.DataLoader(
            range(len(dataset)), batch_size=1, num_workers=args.workers,
            collate_fn=lambda idx: dataset.get_data_info(idx[0])['case_id'] if
            _touch(dataset, idx[0]) else None)
        for case_id in tqdm(loader, desc=f'{key.split("_")[0]} studies', unit='study'):
            seen.add(case_id)
    print(f'preprocessed {len(seen)} studies')


def _touch(dataset, idx):
    """Run the pipeline of one study (which stores it in the cache)."""
    dataset.prepare_data(idx)
    return True


if __name__ == '__main__':
    sys.exit(run_cli(main))
