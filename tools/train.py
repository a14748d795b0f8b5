"""Train a ctglip model: ``python tools/train.py CONFIG [options]`` (see README)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ctglip.utils.cli import (add_common_arguments, apply_common_args,  # noqa: E402
                              init_cpu_distributed, load_config, parse_tool_args, run_cli)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a ctglip model.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the last checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (fp16 on CUDA, bf16 autocast on CPU)')
    add_common_arguments(parser)
    return parse_tool_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, args)
    if args.resume:
        cfg.resume = True
    if args.amp:
        cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'
    init_cpu_distributed(cfg)

    runner = build_runner(cfg)
    runner.train()


def build_runner(cfg):
    """mmengine's ``Runner`` (DDP when distributed), or the runner a config names in
    ``runner_type`` (``FlexibleRunner`` for FSDP and DeepSpeed strategies)."""
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    from mmengine.registry import RUNNERS
    return RUNNERS.build(cfg)


if __name__ == '__main__':
    sys.exit(run_cli(main))
