"""What the command-line tools share: config loading with one-line errors, the common flags,
threshold calibration and metric output. Tools stay thin; no training logic lives here."""
import json
import os
import os.path as osp
import re
import sys

from ctglip.utils.errors import ConfigError, CTGLIPError, unwrap_worker_message

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
LAYOUT_DATASETS = ('MSDTumorDataset', 'KiTSTumorDataset')  # data_root is the benchmark folder


def load_config(path, cfg_options=()):
    """Read a config file, apply ``--cfg-options KEY=VALUE`` overrides and hand the top-level
    ``abnormality_vocab`` to the components that take one (``ctglip.vocabularies.config``)."""
    from mmengine.config import Config, DictAction
    if not osp.isfile(path):
        raise ConfigError(f'config file {path} does not exist. Fix: give a path such as '
                          'configs/ctglip/ctglip_mit_104organ.py.')
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, FileNotFoundError, KeyError, ValueError, AttributeError) as e:
        raise ConfigError(f'cannot read config {path}: {str(e).splitlines()[0]}') from None
    if cfg_options:
        options = {}
        for item in cfg_options:
            if '=' not in item:
                raise ConfigError(f'--cfg-options {item!r}: expected KEY=VALUE.')
            key, value = item.split('=', 1)
            options[key] = DictAction._parse_iterable(value)
        old_iters = (cfg.get('train_cfg') or {}).get('max_iters')
        cfg.merge_from_dict(options)
        if not any(k.startswith('param_scheduler') for k in options):
            follow_max_iters(cfg, old_iters)
    from ctglip.vocabularies.config import apply_abnormality_vocab
    apply_abnormality_vocab(cfg)  # the one abnormality_vocab key reaches every component
    return cfg


def follow_max_iters(cfg, old_iters):
    """Let iteration schedulers that ended at the old ``train_cfg.max_iters`` end at the new one.

    Configs compute ``end=max_iters`` when they are read, so ``--cfg-options
    train_cfg.max_iters=N`` alone would leave a cosine decay ending at the old length (no decay
    in a shorter run, a long tail at the floor in a longer one). Overriding any
    ``param_scheduler`` key turns this off.
    """
    new_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    schedulers = cfg.get('param_scheduler')
    if not old_iters or not new_iters or new_iters == old_iters or not schedulers:
        return
    for i, sched in enumerate([schedulers] if isinstance(schedulers, dict) else schedulers):
        if not sched.get('by_epoch', True) and sched.get('end') == old_iters:
            if sched.get('begin', 0) >= new_iters:
                raise ConfigError(
                    f'--cfg-options train_cfg.max_iters={new_iters} ends before '
                    f'param_scheduler[{i}] ({sched.get("type")}) begins at iteration '
                    f'{sched.get("begin", 0)}. Fix: train more than {sched.get("begin", 0)} '
                    'iterations, or override param_scheduler as well.')
            sched['end'] = new_iters
            print(f'note: param_scheduler[{i}].end follows train_cfg.max_iters '
                  f'({old_iters} -> {new_iters})', file=sys.stderr)


def add_common_arguments(parser):
    """The flags that train and test share: data root, overrides, launcher."""
    parser.add_argument('--data-root', help='point every dataloader at this manifest folder')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed runs')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser, argv):
    """Parse, and export ``LOCAL_RANK`` for launchers that pass ``--local-rank``."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def apply_common_args(cfg, args):
    """Apply ``--work-dir``, ``--data-root`` and ``--launcher`` to a config (in place)."""
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if getattr(args, 'data_root', None):
        root = osp.abspath(args.data_root)
        datasets = [cfg[key]['dataset'] for key in DATALOADERS if cfg.get(key) is not None]
        # tumor benchmarks read in their own layout (MSD task folder, KiTS cases) need no manifest
        layout = bool(datasets) and all(d.get('type') in LAYOUT_DATASETS for d in datasets)
        if not layout and not osp.isfile(osp.join(root, 'manifest.jsonl')):
            raise ConfigError(f'--data-root {args.data_root}: no manifest.jsonl there. Fix: point '
                              'it at a dataset folder (see README, "Use your own data").')
        for dataset in datasets:
            dataset['data_root'] = root
            if dataset.get('type') not in LAYOUT_DATASETS:
                dataset['phantom'] = None  # real data given: never generate phantoms there
    cfg.launcher = getattr(args, 'launcher', 'none')


def run_cli(main, argv=None):
    """Run a tool's ``main``; a user-fixable error becomes one line on stderr and exit code 2.

    The process first keeps freed CPU tensor memory for reuse (``ctglip.utils.malloc``).

    An error raised in a DataLoader worker is printed with its own message, without torch's
    "Caught ... in DataLoader worker process N" wrapper and the worker's traceback.
    """
    from ctglip.utils.malloc import tune_cpu_malloc
    tune_cpu_malloc()  # reuse freed CPU tensor memory: no page faults per step (see there)
    try:
        main(argv)
    except CTGLIPError as e:
        print(f'error: {_one_line(e)}', file=sys.stderr)
        return 2
    except RuntimeError as e:  # torch re-raises worker errors it cannot rebuild as RuntimeError
        message = _worker_ctglip_message(str(e))
        if message is None:
            raise
        print(f'error: {_one_line(message)}', file=sys.stderr)
        return 2
    except TypeError as e:
        msg = str(e)
        if re.search(r'unexpected keyword argument|missing \d+ required', msg):
            print(f'error: config: {_one_line(e)}. Fix: check the field names against the '
                  "class's documentation.", file=sys.stderr)
            return 2
        raise
    return 0


def _one_line(e):
    return ' '.join(unwrap_worker_message(str(e))[0].split())


def _worker_ctglip_message(text):
    """The message of a CTGLIPError that torch wrapped into another type; None otherwise."""
    message, where, worker_tb = unwrap_worker_message(text)
    if where is None:
        return None
    last = re.findall(r'^([\w.]+)\.(\w+): ', worker_tb, re.M)
    module = sys.modules.get(last[-1][0]) if last else None
    cls = getattr(module, last[-1][1], None) if module else None
    return message if isinstance(cls, type) and issubclass(cls, CTGLIPError) else None


def write_metrics(metrics, path):
    """Write metrics as JSON, atomically (temporary file, fsync, rename)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump({k: _plain(v) for k, v in metrics.items()}, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _plain(value):
    if hasattr(value, 'item'):
        return value.item()
    return value


def calibrate_thresholds(runner, cfg):
    """Choose abnormality operating thresholds on the validation split in this run; apply them
    to test.

    Every ``ZeroShotAbnormalityDetection`` of the test evaluator without thresholds of its own
    receives, in memory, the thresholds that the validation run has just reported in its
    metrics (``<prefix>/abn_threshold/<group>/<abnormality>``), through
    ``use_validation_thresholds``; it then reports ``abn_thresholds_val_calibrated=1``. No
    file is read, so a thresholds file left by an earlier run can never be applied. As a record
    of the run, ``<work_dir>/val_calibration/`` receives ``abn_thresholds.json`` and
    ``val_metrics.json`` (for choices that must not look at test); files of an earlier run
    there are removed first.

    Args:
        runner (mmengine.runner.Runner): the runner of the test run, before ``runner.test()``.
        cfg (mmengine.Config): its config.

    Returns:
        int: the number of test metrics that received validation thresholds (0 when the test
        evaluator has no abnormality metric without thresholds of its own).

    Raises:
        ConfigError: the test evaluator needs thresholds but the config has no validation
            split or no ``ZeroShotAbnormalityDetection`` in ``val_evaluator``, or the
            validation split gave no thresholds (no abnormality with both classes there).
    """
    from mmengine.dist import is_main_process

    from ctglip.evaluation.metrics import ZeroShotAbnormalityDetection
    from ctglip.evaluation.metrics.zeroshot_abnormality import THRESHOLDS_FILE
    if cfg.get('test_dataloader') is None:
        return 0
    runner._test_loop = runner.build_test_loop(runner._test_loop)
    targets = [m for m in runner._test_loop.evaluator.metrics
               if isinstance(m, ZeroShotAbnormalityDetection) and m.thresholds is None]
    if not targets:
        return 0
    if cfg.get('val_dataloader') is None:
        raise ConfigError('the test evaluator has ZeroShotAbnormalityDetection without '
                          'thresholds, but the config has no val_dataloader to choose them on. '
                          'Fix: add a validation split, give the metric thresholds=..., or pass '
                          '--no-val-calibration to choose them on the test split itself '
                          '(optimistic).')
    runner._val_loop = runner.build_val_loop(runner._val_loop)
    sources = [m for m in runner._val_loop.evaluator.metrics
               if isinstance(m, ZeroShotAbnormalityDetection)]
    if not sources:
        raise ConfigError('the test evaluator has ZeroShotAbnormalityDetection but val_evaluator '
                          'has not, so no validation thresholds can be chosen. Fix: add it to '
                          'val_evaluator, or pass --no-val-calibration.')
    calibration_dir = osp.join(cfg.work_dir, 'val_calibration')
    if is_main_process():
        for name in (THRESHOLDS_FILE, 'val_metrics.json'):  # records of an earlier run
            if osp.isfile(osp.join(calibration_dir, name)):
                os.remove(osp.join(calibration_dir, name))
    for metric in sources:
        metric.out_dir, metric.thresholds, metric.thresholds_from_val = \
            calibration_dir, None, False
    runner.logger.info('choosing abnormality thresholds on the validation split')
    val_metrics = runner.val() or {}
    if val_metrics:
        write_metrics(val_metrics, osp.join(calibration_dir, 'val_metrics.json'))
    for metric in targets:
        source = _matching_source(metric, sources)
        thresholds = _reported_thresholds(val_metrics, source.prefix)
        if not thresholds:
            evaluable = val_metrics.get(_prefixed(source.prefix, 'abn_num_evaluable'))
            raise ConfigError(
                'the validation split gave no abnormality thresholds '
                f'({_prefixed(source.prefix, "abn_num_evaluable")}={evaluable}: no abnormality '
                'has both positive and negative organs there; see the warnings above). Fix: '
                'validate on a split with abnormal cases, or pass --no-val-calibration to '
                'choose them on the test split itself (optimistic).')
        metric.use_validation_thresholds(thresholds)
    runner.logger.info(f'abnormality thresholds chosen on the validation split of this run '
                       f'are applied to test (record: {calibration_dir}/{THRESHOLDS_FILE})')
    return len(targets)


def _prefixed(prefix, key):
    return f'{prefix}/{key}' if prefix else key


def _matching_source(target, sources):
    """The validation metric whose thresholds a test metric takes: the one with its prefix."""
    same = [m for m in sources if m.prefix == target.prefix]
    if len(same) == 1 or (not same and len(sources) == 1):
        return (same or sources)[0]
    raise ConfigError(f'cannot tell which ZeroShotAbnormalityDetection of val_evaluator '
                      f'chooses the thresholds of the test metric with prefix '
                      f'{target.prefix!r}: val_evaluator has prefixes '
                      f'{[m.prefix for m in sources]}. Fix: give each test metric exactly one '
                      'validation metric with the same prefix.')


def _reported_thresholds(metrics, prefix):
    """``{group/abnormality: threshold}`` from the ``abn_threshold/...`` keys of metrics."""
    head = _prefixed(prefix, 'abn_threshold/')
    return {key[len(head):]: float(value) for key, value in metrics.items()
            if key.startswith(head)}


def set_metric_out_dirs(runner, out_dir):
    """Send the pictures of test metrics without an ``out_dir`` to ``out_dir``."""
    runner._test_loop = runner.build_test_loop(runner._test_loop)
    for metric in runner._test_loop.evaluator.metrics:
        if hasattr(metric, 'out_dir') and metric.out_dir is None:
            metric.out_dir = out_dir


def init_cpu_distributed(cfg):
    """Start the gloo process group of a distributed run on a machine without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` whatever the backend, which fails
    without a GPU; the Runner skips it when a process group exists. DDP wraps CPU modules only
    with ``device_ids=None``. With CUDA, or without a launcher, this does nothing.
    """
    import datetime

    import torch
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    if backend != 'gloo':
        raise ConfigError(f'--launcher {cfg.launcher} on a machine without CUDA cannot use the '
                          f'{backend!r} backend. Fix: add --cfg-options '
                          'env_cfg.dist_cfg.backend=gloo.')
    if cfg.launcher != 'pytorch':
        raise ConfigError(f'--launcher {cfg.launcher} needs CUDA. Fix: start CPU-only runs with '
                          'tools/dist_train.sh (--launcher pytorch).')
    if dist_cfg.get('timeout') is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    import torch.distributed as dist
    dist.init_process_group(backend='gloo', **dist_cfg)  # RANK, WORLD_SIZE, ... from torchrun
    cfg.model_wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or {}, device_ids=None)
