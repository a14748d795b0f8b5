"""Benchmark the training step of configs: time, FLOPs and MFU, memory, the data loader, the text
side, and two configs side by side.

    python tools/analysis_tools/benchmark.py CONFIG [CONFIG ...] [--compare CONFIG2 ...]
        [--device cpu|cuda] [--iters N] [--warmup N] [--amp] [--threads N]
        [--data-root DIR] [--cfg-options K=V ...] [--compare-cfg-options K=V ...]
        [--json OUT] [--update-readme]
    python tools/analysis_tools/benchmark.py --from-json OUT [--memory-model] [--update-readme]
    python tools/analysis_tools/benchmark.py --memory-model [CONFIG ...] [--families nnunet mit]
        [--arch paper] [--crops 32x64x64 64x64x64] [--size 112x256x352] [--batch 8]
        [--gpu-memory-gib 80] [--gpu-peak-tflops 312] [--mfu 0.3] [--epochs 20]
        [--studies 44011] [--json OUT] [--update-readme]

A step is ``model.train_step(batch, optim_wrapper)`` with the config's model, optimizer wrapper
(``--amp``: bf16 autocast on the CPU, as ``tools/train.py --amp``) and training batches. The
batches are read once, before any step (the loader's samples/s is measured there, with the
config's workers and nothing else running), so step times hold no data loading. Each config
then runs ``--warmup`` untimed and ``--iters`` timed steps; with ``--compare`` the two configs
of a pair alternate step by step (A B, B A, ...) in one process, so that both see the same
machine, and the ratio B / A is taken per pair of steps. Reported per config: median step time
and its IQR, samples/s, FLOPs per step (``FlopCounterMode``, forward + backward, one extra
step), achieved FLOP/s as a fraction of a GEMM and a Conv3d peak measured in the same run
(MFU), peak memory (process RSS high-water on the CPU, ``max_memory_allocated`` on CUDA, and
the peak of live tensors during one step, ``LiveTensorPeak``), the loader's
samples/s over the step's consumption, and the text encoder's calls and language-model
forwards per step (forwards are cache misses of a frozen encoder). Several CONFIGs with as many
``--compare`` configs make several pairs, run one after the other.

``--memory-model`` models the paper-sized run instead (see ``memory_model``). How to read
the output: docs/benchmarks.md.
"""
import argparse
import datetime
import gc
import json
import os
import os.path as osp
import random
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from ctglip.utils.cli import apply_common_args, load_config, run_cli  # noqa: E402
from ctglip.utils.errors import ConfigError  # noqa: E402

README_SECTION = 'benchmark-table'
MEMORY_SECTION = 'memory-model'
FAMILIES = {'nnunet': 'configs/ctglip/ctglip_nnunet_104organ.py',
            'mit': 'configs/ctglip/ctglip_mit_104organ.py'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='*', metavar='CONFIG', help='config(s) to benchmark')
    parser.add_argument('--compare', nargs='+', default=[], metavar='CONFIG2',
                        help='alternate each CONFIG with the CONFIG2 at its position')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--iters', type=int, default=10, help='timed steps per config')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per config first')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16 autocast on the CPU), as tools/train.py')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--workers', type=int,
                        help='override train_dataloader.num_workers of every config')
    parser.add_argument('--max-batches', type=int, default=32,
                        help='distinct batches read before the steps; steps cycle through them')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help='point every dataloader at this manifest folder')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='overrides of CONFIG (and of CONFIG2 unless '
                             '--compare-cfg-options is given)')
    parser.add_argument('--compare-cfg-options', nargs='*', metavar='KEY=VALUE',
                        help='overrides of CONFIG2 instead of --cfg-options (compare a config '
                             'with itself changed: --compare CONFIG --compare-cfg-options K=V; '
                             'code variants: custom_imports.imports=[module] and a registered '
                             'name)')
    parser.add_argument('--no-tensor-memory', action='store_true',
                        help='skip the step that tracks the peak of live tensors')
    parser.add_argument('--no-flops', action='store_true', help='skip the FLOP-counting step')
    parser.add_argument('--json', help='write the results as JSON here')
    parser.add_argument('--from-json', metavar='JSON',
                        help='print (and with --update-readme write) the table of a run saved '
                             'with --json, without measuring anything')
    parser.add_argument('--update-readme', action='store_true',
                        help=f"write the table into README.md's {README_SECTION} section "
                             f'({MEMORY_SECTION} with --memory-model)')
    model = parser.add_argument_group('--memory-model: the paper-sized run')
    model.add_argument('--memory-model', action='store_true',
                       help='model memory and FLOPs of the paper-sized run instead')
    model.add_argument('--families', nargs='+', default=list(FAMILIES), choices=list(FAMILIES))
    model.add_argument('--arch', default='paper', help='backbone preset of the modelled run')
    model.add_argument('--crops', nargs='+', default=['32x64x64', '64x64x64'],
                       help='small crops measured on this machine (multiples of 32)')
    model.add_argument('--size', default='112x256x352', help='the modelled crop, D x H x W')
    model.add_argument('--batch', type=int, default=8, help='the modelled batch per GPU')
    model.add_argument('--gpu-memory-gib', type=float, default=80.0)
    model.add_argument('--gpu-peak-tflops', type=float, default=312.0,
                       help='dense bf16 peak of the modelled GPU (A100: 312, H100 SXM: 989)')
    model.add_argument('--mfu', type=float, default=0.3, help='assumed MFU of the modelled run')
    model.add_argument('--epochs', type=int, default=20)
    model.add_argument('--studies', type=int, default=44011,
                       help='CT volumes per epoch (the paper: 44,011 CT-report pairs)')
    args = parser.parse_args(argv)
    if not args.memory_model and not args.from_json:
        if not args.configs:
            parser.error('give at least one CONFIG (or --memory-model)')
        if args.compare and len(args.compare) != len(args.configs):
            parser.error(f'--compare needs one config per CONFIG ({len(args.configs)}), got '
                         f'{len(args.compare)}')
        if args.iters < 1 or args.warmup < 0:
            parser.error('--iters must be >= 1 and --warmup >= 0')
    return args


def command_line(argv):
    """The command as a reader would type it (without --update-readme and --json)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == '--json':
            skip = True
            continue
        if a.startswith('--json=') or a == '--update-readme':
            continue
        out.append(a)
    return ' '.join(['python tools/analysis_tools/benchmark.py'] + out)


# -- building ----------------------------------------------------------------------------------
class Subject:
    """One config under test: its model, optimizer wrapper, batches, and measurements."""

    def __init__(self, label, config, cfg_options, args):
        import numpy as np
        import torch
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import init_default_scope
        from mmengine.runner import Runner

        from ctglip.registry import MODELS
        from ctglip.utils.benchmark import TextEncoderProbe

        self.label, self.config, self.cfg_options = label, config, list(cfg_options)
        cfg = load_config(config, cfg_options)
        if cfg.get('custom_imports'):  # also those given by --cfg-options (code variants)
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg.custom_imports)
        apply_common_args(cfg, argparse.Namespace(config=config, data_root=args.data_root,
                                                  work_dir=None, launcher='none'))
        if args.amp:
            cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'
        self.cfg = cfg
        loader_cfg = cfg.train_dataloader
        if args.workers is not None:
            loader_cfg.num_workers = args.workers
        if not loader_cfg.get('num_workers'):
            loader_cfg.persistent_workers = False
        init_default_scope(cfg.get('default_scope', 'ctglip'))
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        self.device = torch.device(args.device)
        self.model = MODELS.build(cfg.model).to(self.device).train()
        self.optim_wrapper = build_optim_wrapper(self.model, cfg.optim_wrapper)
        self.amp = type(self.optim_wrapper).__name__ in ('MixedPrecisionOptimWrapper',
                                                         'AmpOptimWrapper')
        self.dtype = 'bfloat16' if self.amp and self.device.type == 'cpu' else (
            'float16' if self.amp else 'float32')
        self.loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
        self.batch_size = loader_cfg.batch_size
        self.num_workers = loader_cfg.get('num_workers', 0)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.probe = TextEncoderProbe(self.model)
        self.times, self.device_peaks = [], []
        self.result = {}

    def read_batches(self, count, measure):
        """Read ``count`` batches; the loader's samples/s over the last ``measure`` of them.

        The first batches wait for the workers to start; the rate is taken from the arrival
        of batch ``count - measure`` to that of the last.
        """
        import time
        batches = _endless(self.loader)
        self.batches, arrivals, clock = [], [], time.perf_counter()
        for _ in range(count):
            self.batches.append(next(batches))
            arrivals.append(time.perf_counter() - clock)
        batches.close()  # ends the loader's iterator (and its workers unless persistent)
        start = arrivals[count - measure - 1]
        seconds = arrivals[-1] - start
        self.loader_result = dict(
            batches=measure, num_workers=self.num_workers, first_batch_s=arrivals[0],
            samples_per_s=measure * self.batch_size / seconds if seconds > 0 else None)

    def step(self, i):
        return self.model.train_step(self.batches[i % len(self.batches)], self.optim_wrapper)

    def release(self):
        self.probe.remove()
        for name in ('model', 'optim_wrapper', 'loader', 'batches'):
            setattr(self, name, None)


def _endless(loader):
    """The loader's batches, starting a new epoch when an epoch-based sampler runs out."""
    while True:
        yield from loader


# -- measuring ---------------------------------------------------------------------------------
def machine_peaks(device, dtypes):
    """GEMM and Conv3d peaks (FLOP/s) for each dtype, as dicts keyed by dtype name."""
    import torch

    from ctglip.utils.benchmark import conv3d_peak, gemm_peak
    out = {'gemm': {}, 'conv3d': {}}
    for name in dtypes:
        dtype = getattr(torch, name)
        out['gemm'][name] = gemm_peak(device, dtype)
        out['conv3d'][name] = conv3d_peak(device, dtype)
    return out


def merge_peaks(first, second):
    """The better of two peak measurements (before and after the steps) per kind and dtype."""
    out = {}
    for kind in first:
        out[kind] = {}
        for dtype, value in first[kind].items():
            other = second[kind][dtype]
            out[kind][dtype] = value if value['flops_per_s'] >= other['flops_per_s'] else other
    return out


def run_pair(subjects, args):
    """Warm up, then time the subjects' steps alternately; extra steps count FLOPs and memory."""
    from ctglip.utils.benchmark import (device_peak_mib, flop_counter, module_flops, peak_rss_mib,
                                        reset_device_peak, summarize, tensor_memory_peak, timed)
    rss_before = peak_rss_mib()
    for i in range(args.warmup):
        for s in subjects:
            s.step(i)
    for s in subjects:
        s.text_warmup = s.probe.snapshot()
        s.probe.reset()
    for i in range(args.iters):
        for s in (subjects if i % 2 == 0 else subjects[::-1]):
            reset_device_peak(s.device)
            _, seconds = timed(lambda: s.step(args.warmup + i), s.device)
            s.times.append(seconds)
            s.device_peaks.append(device_peak_mib(s.device))
    rss_after = peak_rss_mib()
    for s in subjects:
        text = s.probe.snapshot()
        s.flops = s.flops_by_part = s.tensor_memory = None
        if not args.no_flops:
            with flop_counter() as counter:
                s.step(args.warmup + args.iters)
            s.flops = int(counter.get_total_flops())
            s.flops_by_part = module_flops(counter, s.model, ('backbone', 'text_encoder'))
        if not args.no_tensor_memory:
            optimizer = s.optim_wrapper.optimizer
            try:
                s.tensor_memory = tensor_memory_peak(
                    lambda: s.step(args.warmup + args.iters + 1), s.model, optimizer)
            except Exception as e:  # a tensor it cannot follow: report, keep the rest
                print(f'note: {s.label}: no tensor memory peak ({type(e).__name__}: {e})',
                      file=sys.stderr)
        s.result = dict(
            label=s.label, config=s.config, cfg_options=s.cfg_options, amp=s.amp,
            dtype=s.dtype, batch_size=s.batch_size, params=s.params, trainable=s.trainable,
            step_time=summarize(s.times), times=s.times,
            samples_per_s=s.batch_size / summarize(s.times)['median'],
            flops_per_step=s.flops, flops_by_part=s.flops_by_part,
            memory=dict(rss_peak_mib=rss_after, rss_growth_mib=rss_after - rss_before,
                        device_peak_mib=max((p for p in s.device_peaks if p is not None),
                                            default=None),
                        tensor_peak=s.tensor_memory),
            loader=s.loader_result,
            text=dict(warmup=s.text_warmup, timed=text,
                      forwards_per_step=text['forwards'] / args.iters,
                      new_texts_per_step=text['encoded'] / args.iters,
                      calls_per_step=text['calls'] / args.iters))
        step_sps = s.result['samples_per_s']
        loader_sps = s.loader_result['samples_per_s']
        s.result['loader']['ratio_to_step'] = loader_sps / step_sps if loader_sps else None
    if len(subjects) == 2:
        a, b = subjects
        ratios = [tb / ta for ta, tb in zip(a.times, b.times)]
        return dict(a=a.label, b=b.label, ratio=summarize(ratios), ratios=ratios,
                    ratio_of_medians=(b.result['step_time']['median']
                                      / a.result['step_time']['median']),
                    ratio_of_minima=min(b.times) / min(a.times))
    return None


def add_mfu(result, peaks):
    """Achieved FLOP/s and its fraction of the GEMM and Conv3d peaks of the step's dtype."""
    flops = result['flops_per_step']
    if not flops:
        result.update(achieved_flops_per_s=None, mfu_gemm=None, mfu_conv3d=None)
        return
    achieved = flops / result['step_time']['median']
    dtype = result['dtype'] if result['dtype'] in peaks['gemm'] else 'float32'
    result.update(achieved_flops_per_s=achieved, peak_dtype=dtype,
                  mfu_gemm=achieved / peaks['gemm'][dtype]['flops_per_s'],
                  mfu_conv3d=achieved / peaks['conv3d'][dtype]['flops_per_s'])


def machine(device):
    import torch

    from ctglip.utils.benchmark import cpu_name
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(torch.device(device))
    from ctglip.utils.malloc import cpu_malloc_state
    threads = torch.get_num_threads()
    return (f'{cpu_name()} ({os.cpu_count()} CPUs visible, {threads} '
            f'thread{"s" if threads != 1 else ""}, malloc {cpu_malloc_state()})')


def benchmark(args, argv):
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = [[(args.configs[i], args.cfg_options)] for i in range(len(args.configs))]
    for i, config in enumerate(args.compare):
        options = args.cfg_options if args.compare_cfg_options is None \
            else args.compare_cfg_options
        pairs[i].append((config, options))
    results = dict(command=command_line(argv),
                   date=datetime.datetime.now().astimezone().isoformat(timespec='minutes'),
                   machine=machine(args.device), device=args.device,
                   torch=torch.__version__, threads=torch.get_num_threads(),
                   iters=args.iters, warmup=args.warmup, configs=[], compare=[])
    dtypes = ['float32', 'bfloat16'] + (['float16'] if args.device.startswith('cuda') else [])
    pair_results, before = [], None
    for pair in pairs:
        subjects = []
        for k, (config, options) in enumerate(pair):
            label = osp.splitext(osp.basename(config))[0]
            if len(pair) == 2 and pair[0][0] == pair[1][0]:
                label += ' (A)' if k == 0 else ' (B)'
            subjects.append(Subject(label, config, options, args))
        count = min(args.max_batches, args.warmup + args.iters + 2)
        measure = max(1, count - max(1, subjects[0].num_workers))
        for s in subjects:
            s.read_batches(count, measure)
        if before is None:  # once the batches are read, on the machine the steps see
            before = machine_peaks(args.device, dtypes)
        comparison = run_pair(subjects, args)
        pair_results.append(([s.result for s in subjects], comparison))
        for s in subjects:
            s.release()
        del subjects
        gc.collect()
    peaks = merge_peaks(before, machine_peaks(args.device, dtypes))
    results['peaks'] = peaks
    for subject_results, comparison in pair_results:
        for r in subject_results:
            add_mfu(r, peaks)
            results['configs'].append(r)
        if comparison:
            results['compare'].append(comparison)
    return results


# -- output ------------------------------------------------------------------------------------
def _g(flops):
    return '-' if flops is None else f'{flops / 1e9:.1f}'


def _pct(x):
    return '-' if x is None else f'{100 * x:.1f} %'


def table(results):
    """The results as Markdown: a caption, one row per config, the peaks and the ratios."""
    lines = [
        f"`{results['command']}`, {results['date'][:16].replace('T', ' ')}, "
        f"{results['machine']}, torch {results['torch']}, {results['warmup']} warm-up + "
        f"{results['iters']} timed steps per config",
        '',
        '| config | batch | dtype | step (s), median (IQR) | samples/s | GFLOP/step '
        '(backbone) | GFLOP/s | MFU vs GEMM | MFU vs Conv3d | peak tensors (MiB) | '
        'loader samples/s (x step) | text: LM forwards / step (new texts) |',
        '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in results['configs']:
        t = r['step_time']
        part = (r['flops_by_part'] or {}).get('backbone')
        mem = r['memory']['tensor_peak']
        mem = '-' if not mem else f"{mem['total'] / 2**20:.0f}"
        if r['memory'].get('device_peak_mib') is not None:
            mem += f" ({r['memory']['device_peak_mib']:.0f} alloc.)"
        loader = r['loader']
        loader_cell = '-' if not loader['samples_per_s'] else \
            f"{loader['samples_per_s']:.1f} ({loader['ratio_to_step']:.1f}x)"
        text = r['text']
        lines.append(
            f"| {r['label']} | {r['batch_size']} | {r['dtype']} | {t['median']:.3f} "
            f"({t['q1']:.3f}-{t['q3']:.3f}) | {r['samples_per_s']:.2f} | "
            f"{_g(r['flops_per_step'])} ({_g(part)}) | "
            f"{_g(r.get('achieved_flops_per_s'))} | {_pct(r.get('mfu_gemm'))} | "
            f"{_pct(r.get('mfu_conv3d'))} | {mem} | {loader_cell} | "
            f"{text['forwards_per_step']:.2f} ({text['new_texts_per_step']:.1f}) |")
    peaks = results['peaks']
    parts = []
    for kind, name in (('gemm', 'GEMM'), ('conv3d', 'Conv3d')):
        for dtype, p in peaks[kind].items():
            parts.append(f"{name} {dtype} {p['flops_per_s'] / 1e9:.0f} GFLOP/s ({p['shape']})")
    lines += ['', 'Peaks measured in the same run: ' + '; '.join(parts) + '.']
    for c in results['compare']:
        r = c['ratio']
        lines.append(f"Step time {c['b']} / {c['a']}: {r['median']:.3f} "
                     f"(IQR {r['q1']:.3f}-{r['q3']:.3f}, {r['n']} alternated pairs; ratio of "
                     f"medians {c['ratio_of_medians']:.3f}, of minima "
                     f"{c['ratio_of_minima']:.3f}).")
    return '\n'.join(lines)


def write_json(results, path):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=2, sort_keys=True, default=str)


def update_readme(section, markdown):
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    from readme_section import update_readme as update
    update(section, markdown)


# -- the memory and FLOP model of the paper-sized run ---------------------------------------
def parse_size(text):
    try:
        size = tuple(int(s) for s in text.lower().split('x'))
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) < 1:
        raise ConfigError(f'size {text!r}: expected D x H x W, e.g. 112x256x352.')
    return size


def _padded(size, divisor):
    return tuple(-(-s // divisor) * divisor for s in size)


def measure_family(family, config, args):
    """Real training steps of a config's model with the modelled backbone preset at small
    crops (batch 1, bf16), with and without activation checkpointing: live-tensor peak by
    kind (LiveTensorPeak) and FLOPs (FlopCounterMode) per crop. One model serves all crops
    (``with_cp`` is read at each forward)."""
    import torch
    from mmengine.runner import Runner

    from ctglip.utils.benchmark import flop_counter, module_flops, tensor_memory_peak
    sub_args = argparse.Namespace(**vars(args))
    sub_args.amp, sub_args.workers = True, 0
    # The same batch is stepped several times in bf16: a tiny model can overflow there, and a
    # skipped update still ran the forward and backward pass whose memory and FLOPs we count.
    options = list(args.cfg_options) + [f'model.backbone.arch={args.arch}',
                                        'train_dataloader.batch_size=1', 'model.nonfinite=skip']
    s = Subject(family, config, options, sub_args)
    rows = []
    for crop in args.crops:
        size = parse_size(crop)
        set_train_crop(s.cfg, size)
        s.loader = Runner.build_dataloader(s.cfg.train_dataloader, seed=args.seed)
        s.read_batches(2, 1)
        shape = s.batches[1]['inputs'][0].shape[1:]
        padded = _padded(shape, s.model.backbone.size_divisor)
        s.step(0)  # allocations, text cache; optimizer states exist from here on
        for with_cp in (False, True):
            s.model.backbone.with_cp = with_cp
            with flop_counter() as counter:  # then the texts of batch 1 are cached
                s.step(1)
            flops = int(counter.get_total_flops())
            parts = module_flops(counter, s.model, ('backbone', 'text_encoder'))
            memory = tensor_memory_peak(lambda: s.step(1), s.model, s.optim_wrapper.optimizer)
            rows.append(dict(family=family, with_cp=with_cp, crop=list(size),
                             padded=list(padded), voxels=int(torch.tensor(padded).prod()),
                             crop_voxels=int(torch.tensor(shape).prod()), flops=flops,
                             flops_by_part=parts, memory=memory, params=s.params))
            print(f'  measured {family} with_cp={with_cp} crop {crop}: '
                  f"{memory['total'] / 2**20:.0f} MiB live tensors at the peak, "
                  f'{flops / 1e9:.1f} GFLOP/step', file=sys.stderr)
    s.release()
    gc.collect()
    return rows


def set_train_crop(cfg, size):
    """Set the ``spatial_size`` of the training pipeline's crop (``RandOrganCrop``)."""
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if 'spatial_size' in t]
    if not crops:
        raise ConfigError('the training pipeline has no crop with spatial_size to set; '
                          '--memory-model needs one (RandOrganCrop).')
    crops[-1]['spatial_size'] = tuple(size)


def _fit(points):
    """Least-squares line ``y = a + b x`` through ``(x, y)`` points (``a = 0`` for one)."""
    if len(points) == 1:
        x, y = points[0]
        return 0.0, y / x
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else my / mx
    return my - b * mx, b


def memory_model(args, argv):
    """Memory and FLOPs of the paper-sized run: measured at small crops, scaled, checked.

    For each backbone family (its main config, or each CONFIG given, with the backbone preset
    ``args.arch``), with and without
    activation checkpointing (``with_cp``):

    1. measured: full CT-GLIP training steps at ``--crops`` (batch 1, bf16 autocast) on this
       machine: the peak of live tensors (LiveTensorPeak) and FLOPs (FlopCounterMode);
    2. scaled: activation + temporary memory per sample and FLOPs per sample as a straight
       line in padded voxels through the crops, evaluated at ``--size`` (padded to the
       backbone's size divisor); the batch-``--batch`` peak adds the fixed part (weights,
       gradients, AdamW states) once;
    3. checked: the backbone's training step (forward, backward, AdamW) at ``--size`` and
       ``--batch`` on fake tensors (shapes only, no memory or compute): exact FLOPs and
       live-tensor peak of the backbone, to which the measured per-voxel memory of the rest of
       the model (pooling, intensity skip, losses) is added.

    Time: FLOPs per epoch / (``--gpu-peak-tflops`` x ``--mfu``); GPU-days for ``--epochs``
    epochs of ``--studies`` volumes.
    """
    import torch

    from ctglip.registry import BACKBONES
    from ctglip.utils.benchmark import fake_backbone_step
    if args.threads:
        torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    rows = []
    families = [(osp.splitext(osp.basename(c))[0], c) for c in args.configs] or \
        [(f, FAMILIES[f]) for f in args.families]
    for family, config in families:
        measured = measure_family(family, config, args)
        cfg = load_config(config, args.cfg_options)
        for with_cp in (False, True):
            points = [m for m in measured if m['with_cp'] == with_cp]
            backbone_cfg = dict(cfg.model.backbone, arch=args.arch, with_cp=with_cp)
            backbone = BACKBONES.build(backbone_cfg)
            padded = _padded(size, backbone.size_divisor)
            voxels = padded[0] * padded[1] * padded[2]
            fixed = points[-1]['memory']['state']
            act = [(m['voxels'], m['memory']['total'] - fixed) for m in points]
            a, b = _fit(act)
            scaled_sample = a + b * voxels
            scaled_peak = fixed + args.batch * scaled_sample
            # the backbone's FLOPs (the text encoder's depend on cache misses, not on voxels)
            fa, fb = _fit([(m['voxels'], m['flops_by_part']['backbone']) for m in points])
            scaled_flops = fa + fb * voxels
            # the rest of the model (pooling, intensity skip, losses, text encoder): the
            # measured full step less the backbone's fake-tensor step at the same crop, its
            # weights and states once, its transient memory per sample as c + s * voxels
            small = [fake_backbone_step(BACKBONES.build(backbone_cfg),
                                        (1, 1) + tuple(m['padded'])) for m in points]
            rest_state = points[-1]['memory']['state'] - small[-1]['memory']['state']
            rest_c, rest_s = _fit([(m['voxels'], m['memory']['transient']
                                    - f['memory']['transient']) for m, f in zip(points, small)])
            fake = fake_backbone_step(backbone, (args.batch, 1) + padded)
            checked_peak = fake['memory']['total'] + rest_state + args.batch * (
                rest_c + rest_s * voxels)
            flops_per_sample = fake['flops'] / args.batch
            epoch_flops = flops_per_sample * args.studies
            seconds = args.epochs * epoch_flops / (args.gpu_peak_tflops * 1e12 * args.mfu)
            peak = max(scaled_peak, checked_peak)
            per_sample = (peak - fixed) / args.batch
            budget = args.gpu_memory_gib * 2**30
            max_batch = int(max(0.0, budget - fixed) // per_sample)
            rows.append(dict(
                family=family, arch=args.arch, with_cp=with_cp, size=list(size),
                padded=list(padded), batch=args.batch, params=points[-1]['params'],
                backbone_params=fake['params'], measured=points,
                scaled=dict(act_per_sample=scaled_sample, peak=scaled_peak,
                            flops_per_sample=scaled_flops, fit=[a, b]),
                fake=dict(backbone_flops_per_sample=flops_per_sample,
                          backbone_memory=fake['memory'], rest_state=rest_state,
                          rest_fit=[rest_c, rest_s],
                          peak=checked_peak),
                fixed_bytes=fixed, peak=peak, fits=peak <= budget, max_batch=max_batch,
                gpu_days=seconds / 86400))
            print(f'  modelled {family} with_cp={with_cp}: peak {peak / 2**30:.1f} GiB at batch '
                  f'{args.batch}', file=sys.stderr)
    return dict(command=command_line(argv),
                date=datetime.datetime.now().astimezone().isoformat(timespec='minutes'),
                machine=machine('cpu'), torch=torch.__version__, size=list(size),
                batch=args.batch, gpu_memory_gib=args.gpu_memory_gib,
                gpu_peak_tflops=args.gpu_peak_tflops, mfu=args.mfu, epochs=args.epochs,
                studies=args.studies, crops=args.crops, rows=rows)


def memory_table(results):
    gib = 2**30
    size = 'x'.join(map(str, results['size']))
    lines = [
        f"`{results['command']}`, {results['date'][:16].replace('T', ' ')}, measured on "
        f"{results['machine']}, torch {results['torch']}",
        '',
        f"Paper-sized run: {size} crops, batch {results['batch']} per GPU, bf16 autocast, "
        f"AdamW. Measured: full CT-GLIP steps at {', '.join(results['crops'])} (batch 1) "
        'on this machine. Time: '
        f"{results['epochs']} epochs x {results['studies']:,} volumes at "
        f"{100 * results['mfu']:.0f} % MFU of a {results['gpu_peak_tflops']:.0f} TFLOP/s GPU.",
        '',
        '| backbone | act. ckpt | backbone params | backbone TFLOP / sample (fwd+bwd) | '
        'act. / sample, '
        'scaled from measured (GiB) | peak at batch, scaled (GiB) | peak at batch, fake-tensor '
        'check (GiB) | fits in ' f"{results['gpu_memory_gib']:.0f} GB | largest batch | "
        'GPU-days |',
        '|---|---|---:|---:|---:|---:|---:|---|---:|---:|',
    ]
    for r in results['rows']:
        lines.append(
            f"| {r['family']} {r['arch']} | {'yes' if r['with_cp'] else 'no'} | "
            f"{r['backbone_params'] / 1e6:.1f} M | "
            f"{r['fake']['backbone_flops_per_sample'] / 1e12:.2f} "
            f"(scaled: {r['scaled']['flops_per_sample'] / 1e12:.2f}) | "
            f"{r['scaled']['act_per_sample'] / gib:.1f} | {r['scaled']['peak'] / gib:.1f} | "
            f"{r['fake']['peak'] / gib:.1f} | {'yes' if r['fits'] else 'no'} | "
            f"{r['max_batch']} | {r['gpu_days']:.2f} |")
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.from_json:  # a saved run: its own command, date and machine are in its caption
        with open(args.from_json) as f:
            results = json.load(f)
        if args.memory_model:
            markdown, section = memory_table(results), MEMORY_SECTION
        else:
            markdown, section = table(results), README_SECTION
        print(markdown)
        if args.update_readme:
            update_readme(section, markdown)
        return results
    if args.memory_model:
        results = memory_model(args, argv)
        markdown, section = memory_table(results), MEMORY_SECTION
    else:
        results = benchmark(args, argv)
        markdown, section = table(results), README_SECTION
    print(markdown)
    if args.json:
        write_json(results, args.json)
    if args.update_readme:
        update_readme(section, markdown)
    return results


if __name__ == '__main__':
    sys.exit(run_cli(main))
