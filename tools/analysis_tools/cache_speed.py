"""Time loading a training study with and without the preprocessing cache.

    python tools/analysis_tools/cache_speed.py [--config CONFIG] [--data-root DIR] [--n 20]
        [--update-readme]

Uncached: the config's deterministic head (decode NIfTI, reorient, resample, window) runs on
each read. Cached: the same studies read back from ``CachedPreprocess`` entries. Both include
the rest of the training pipeline (random crop, packing). Mean seconds per study, one process,
timed with the harness's primitives (``ctglip.utils.benchmark``). The loader as training
uses it (workers, batches) is measured by ``tools/analysis_tools/benchmark.py`` (its
``loader samples/s`` column, against the step's consumption).
"""
import argparse
import datetime
import os
import os.path as osp
import platform
import shutil
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='configs/ctglip/ctglip_mit_104organ.py')
    parser.add_argument('--data-root')
    parser.add_argument('--n', type=int, default=20, help='studies to time')
    parser.add_argument('--update-readme', action='store_true')
    args = parser.parse_args(argv)

    from mmengine.config import Config

    from ctglip.registry import DATASETS
    from ctglip.utils.benchmark import timed
    cfg = Config.fromfile(osp.join(REPO, args.config))
    dataset_cfg = cfg.train_dataloader.dataset
    if args.data_root:
        dataset_cfg.data_root = args.data_root
    cache_dir = tempfile.mkdtemp(prefix='ctglip-cache-')
    head = dataset_cfg.pipeline[0]
    assert head['type'] == 'CachedPreprocess', 'the config has no CachedPreprocess step'
    head['cache_dir'] = cache_dir
    cached = DATASETS.build(dataset_cfg)
    uncached_cfg = dataset_cfg.copy()
    uncached_cfg.pipeline = list(head['transforms']) + list(dataset_cfg.pipeline[1:])
    uncached = DATASETS.build(uncached_cfg)
    n = min(args.n, len(cached))
    for i in range(n):  # fill the cache
        cached[i]
    _, t_uncached = timed(lambda: [uncached[i] for i in range(n)])
    _, t_cached = timed(lambda: [cached[i] for i in range(n)])
    t_uncached, t_cached = t_uncached / n, t_cached / n
    shutil.rmtree(cache_dir)
    markdown = (
        f'`python tools/analysis_tools/cache_speed.py --n {n}` ({datetime.date.today().isoformat()}, '
        f'{platform.machine()} CPU, {os.cpu_count()} cores, one process): loading one training '
        'study of the phantom dataset\n\n'
        '| pipeline | s / study | speed-up |\n|---|---:|---:|\n'
        f'| decode NIfTI + resample + window every read | {t_uncached:.3f} | 1.0x |\n'
        f'| preprocessing cache (`CachedPreprocess`) | {t_cached:.3f} | '
        f'{t_uncached / t_cached:.1f}x |')
    print(markdown)
    if args.update_readme:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from readme_section import update_readme
        update_readme('cache-speed', markdown)


if __name__ == '__main__':
    main()
