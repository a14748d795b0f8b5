"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]`` (see README).

Runs the evaluators the config names on the test split. Operating thresholds of the
abnormality detector are chosen on the validation split first and applied unchanged to test.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import (add_common_arguments, apply_common_args, load_config,  # noqa: E402
                              parse_tool_args, run_cli, write_metrics)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a ctglip checkpoint.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where results go (default: work_dirs/<config name>)')
    parser.add_argument('--prompts', help='zero-shot prompt JSON replacing the default')
    parser.add_argument('--out-metrics', help='write all metrics to this JSON file')
    parser.add_argument('--no-val-calibration', action='store_true',
                        help='choose abnormality thresholds on the test split itself')
    add_common_arguments(parser)
    return parse_tool_args(parser, argv)


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

    from mmengine.runner import Runner
    from ctglip.utils.cli import calibrate_thresholds, set_metric_out_dirs
    runner = Runner.from_cfg(cfg)
    set_metric_out_dirs(runner, os.path.join(cfg.work_dir, 'test_results'))
    if not args.no_val_calibration:
        calibrate_thresholds(runner, cfg)
    metrics = runner.test()
    if args.out_metrics:
        write_metrics(metrics, args.out_metrics)
        runner.logger.info(f'metrics written to {args.out_metrics}')


if __name__ == '__main__':
    sys.exit(run_cli(main))
