"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]`` (see README).

Runs the evaluators the config names on the test split: the zero-shot benchmark for the
pretraining configs, the tumor benchmark (``tumor/auc``, ``tumor/dice``) for the fine-tuning
configs (``configs/finetune/``), whose per-case predictions ``--out-dir DIR`` writes (a
config without abnormality metrics skips the threshold calibration). Operating thresholds of the
abnormality detector are chosen on the validation split in this same run and handed to the
test metric in memory (never read back from a file, so thresholds of an earlier run cannot be
applied); ``--no-val-calibration`` chooses them on the test split itself and says so. The
metrics record the source (``abn_thresholds_val_calibrated`` / ``abn_thresholds_self_calibrated``);
``--out-metrics`` also records the run under ``_run``: the device the model ran on, the date
and time, the config and the checkpoint.
"""
import argparse
import datetime
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import (add_common_arguments, apply_common_args,  # noqa: E402
                              init_cpu_distributed, load_config, parse_tool_args, run_cli,
                              write_metrics)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a ctglip checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where results go (default: work_dirs/<config name>)')
    parser.add_argument('--prompts', help='zero-shot prompt JSON replacing the default')
    parser.add_argument('--out-metrics', help='write all metrics (and the run record _run) to '
                        'this JSON file')
    parser.add_argument('--out-dir', help='write per-case predictions of a fine-tuning config '
                        'here: <case>/tumor_mask.nii.gz on the input CT grid and '
                        '<case>/tumor_probabilities.json (per-organ tumor probability)')
    parser.add_argument('--no-val-calibration', action='store_true',
                        help='choose abnormality thresholds on the test split itself '
                        '(optimistic; the metrics say abn_thresholds_self_calibrated=1)')
    add_common_arguments(parser)
    return parse_tool_args(parser, argv)


def describe_device(model):
    """The device the model was evaluated on, in words (``NVIDIA H200 GPU``,
    ``x86_64 CPU (16 cores)``)."""
    import torch
    from mmengine.dist import get_world_size
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    world = get_world_size()
    if device.type == 'cuda':
        name = f'{torch.cuda.get_device_name(device)} GPU'
        return f'{world} x {name}' if world > 1 else name
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    name = f'{platform.machine()} {device.type.upper()} ({cores} cores)'
    return f'{world} processes on {name}' if world > 1 else name


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, args)
    if not os.path.isfile(args.checkpoint):
        from ctglip.utils.errors import ConfigError
        raise ConfigError(f'checkpoint {args.checkpoint} does not exist. Fix: give a .pth file '
                          'written by tools/train.py (see its work dir).')
    if args.prompts:
        cfg.model.prompts = os.path.abspath(args.prompts)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.out_dir:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='TumorPredictionWriter', out_dir=os.path.abspath(args.out_dir))]
    init_cpu_distributed(cfg)

    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from ctglip.evaluation.metrics.zeroshot_abnormality import THRESHOLDS_FILE
    from ctglip.utils.cli import calibrate_thresholds, set_metric_out_dirs
    runner = Runner.from_cfg(cfg)
    results_dir = os.path.join(cfg.work_dir, 'test_results')
    stale = os.path.join(results_dir, THRESHOLDS_FILE)
    if is_main_process() and os.path.isfile(stale):
        os.remove(stale)  # a record of an earlier run; this run writes its own when it has one
    set_metric_out_dirs(runner, results_dir)
    if args.no_val_calibration:
        runner.logger.warning('--no-val-calibration: abnormality thresholds without a value in '
                              'the config are chosen on the test split itself (optimistic); '
                              'the metrics say abn_thresholds_self_calibrated=1')
    else:
        calibrate_thresholds(runner, cfg)
    started = datetime.datetime.now().astimezone()
    metrics = runner.test()
    if args.out_metrics:
        record = dict(device=describe_device(runner.model),
                      date=started.isoformat(timespec='seconds'),
                      config=args.config, checkpoint=args.checkpoint)
        write_metrics(dict(metrics, _run=record), args.out_metrics)
        runner.logger.info(f'metrics written to {args.out_metrics}')


if __name__ == '__main__':
    sys.exit(run_cli(main))
