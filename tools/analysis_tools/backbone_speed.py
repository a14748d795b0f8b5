"""Benchmark the 3D backbones: parameters, time of a training step, peak memory, as Markdown.

Usage::

    python tools/analysis_tools/backbone_speed.py [--backbones NNUNetEncoder3D MiT3D]
        [--presets tiny small] [--size 64] [--batch 2] [--steps 5] [--warmup 2]
        [--threads 2] [--device cpu]

The backbone-only view of the benchmark harness (``tools/analysis_tools/benchmark.py`` times
full CT-GLIP steps of a config; this times the backbones alone, on random input, with the
same primitives from ``ctglip.utils.benchmark``). A training step is: zero grads, forward, a
mean-square loss on the grounded map, backward, an AdamW step; its FLOPs are counted with
``FlopCounterMode`` on one more step. Its time is the mean (and standard deviation) over
``--steps`` steps after ``--warmup`` steps; the median and the minimum are printed too, since
on a shared machine other processes inflate single steps (the minimum is the closest to the
cost alone). Every (backbone, preset) runs in a fresh process, so its memory is its
own. Memory on CPU is the growth of the process's peak resident set size (``ru_maxrss``)
from just before the first step to the end: it counts everything the steps make the process
hold (activations kept for backward, gradients, optimizer state, allocator caches), not only
live tensors, which is what decides whether a machine can run it. On CUDA it is
``torch.cuda.max_memory_allocated`` over the steps, minus what was allocated before them.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

DEFAULT_BACKBONES = ('NNUNetEncoder3D', 'MiT3D')
DEFAULT_PRESETS = ('tiny', 'small')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backbones', nargs='+', default=list(DEFAULT_BACKBONES))
    parser.add_argument('--presets', nargs='+', default=list(DEFAULT_PRESETS))
    parser.add_argument('--size', type=int, default=64, help='input is size^3')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5, help='timed steps')
    parser.add_argument('--update-readme', action='store_true',
                        help="write the table into README.md's backbone-speed section")
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--worker', nargs=2, metavar=('BACKBONE', 'PRESET'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(backbone, preset, args):
    """Build one backbone and time its training steps; returns a dict of results.

    Timing, FLOP counting and memory use the harness's primitives (``ctglip.utils.benchmark``,
    as ``tools/analysis_tools/benchmark.py``), so every timing in the repository is made the
    same way.
    """
    import torch

    from ctglip.registry import BACKBONES
    from ctglip.utils.benchmark import (device_peak_mib, flop_counter, peak_rss_mib,
                                        reset_device_peak, summarize, timed)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = BACKBONES.build(dict(type=backbone, arch=preset)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    size = -(-args.size // model.size_divisor) * model.size_divisor
    images = torch.randn(args.batch, 1, size, size, size, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        feats = model(images)
        feats.float().square().mean().backward()
        optimizer.step()
        return feats.shape

    reset_device_peak(device)
    mem_before = torch.cuda.memory_allocated() / 2**20 if device.type == 'cuda' \
        else peak_rss_mib()
    for _ in range(args.warmup):
        shape = step()
    times = []
    for _ in range(args.steps):
        shape, seconds = timed(step, device)
        times.append(seconds)
    peak = (device_peak_mib(device) if device.type == 'cuda' else peak_rss_mib()) - mem_before
    with flop_counter() as counter:
        step()
    stats = summarize(times)
    return dict(backbone=backbone, preset=preset, size=size,
                params=sum(p.numel() for p in model.parameters()),
                out_shape=list(shape[1:]), out_stride=model.out_stride,
                time_mean=statistics.mean(times),
                time_std=statistics.stdev(times) if len(times) > 1 else 0.0,
                time_median=stats['median'], time_min=stats['min'], peak_mib=peak,
                flops=int(counter.get_total_flops()))


def run_worker(backbone, preset, args):
    """Measure in a fresh interpreter so that peak memory is this configuration's own."""
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', backbone, preset,
           '--size', str(args.size), '--batch', str(args.batch), '--steps', str(args.steps),
           '--warmup', str(args.warmup), '--threads', str(args.threads),
           '--device', args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(f'{backbone}/{preset} failed:\n{result.stderr}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_table(rows, args, command):
    """The results as a Markdown table, headed by the command, date and machine."""
    from ctglip.utils.benchmark import cpu_name
    import torch

    memory = ('peak CUDA alloc. (MiB)' if args.device.startswith('cuda')
              else 'peak RSS growth (MiB)')
    lines = [
        f'### Backbone training step, batch {args.batch}, {args.size}^3 input, '
        f'{args.device}, {args.threads} threads',
        '',
        f'`{command}`, {datetime.datetime.now().isoformat(timespec="minutes")}, '
        f'torch {torch.__version__}, {cpu_name()} ({os.cpu_count()} CPUs visible), '
        f'mean of {args.steps} steps after {args.warmup} warm-up',
        '',
        f'| backbone | preset | params | grounded map (C x d x h x w) | stride | GFLOP/step | '
        f'step time (s), mean ± std | median | min | {memory} |',
        '|---|---|---:|---|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        c, *grid = r['out_shape']
        lines.append(
            f"| {r['backbone']} | {r['preset']} | {r['params'] / 1e6:.2f} M | "
            f"{c} x {' x '.join(map(str, grid))} | {r['out_stride']} | "
            f"{r['flops'] / 1e9:.1f} | {r['time_mean']:.2f} ± {r['time_std']:.2f} | "
            f"{r['time_median']:.2f} | {r['time_min']:.2f} | {r['peak_mib']:.0f} |")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(measure(*args.worker, args)))
        return
    rows = [run_worker(b, p, args) for b in args.backbones for p in args.presets]
    argv = [a for a in sys.argv[1:] if a != '--update-readme']
    command = 'python ' + ' '.join([os.path.relpath(__file__)] + argv)
    table = format_table(rows, args, command)
    print(table)
    if args.update_readme:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from readme_section import update_readme
        update_readme('backbone-speed', table)


if __name__ == '__main__':
    main()
