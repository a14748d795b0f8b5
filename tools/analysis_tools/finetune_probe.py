"""Learning curve of a tumor fine-tuning config: does the network find the tumors, and when?

Trains the config's model on its training loader with a plain AdamW loop (no runner, no
checkpoints) and prints, every ``--every`` steps, over the last batches that held a tumor:

- ``loss``: the config's segmentation loss;
- ``p_tumor`` / ``p_bg``: the mean tumor probability on tumor and on other voxels;
- ``recall``: the share of tumor voxels above 0.5;
- ``organ AUC``: the AUC of the tumor probability over the voxels of the config's tumor organs
  (and the tumor), i.e. whether the network ranks the lesion above the organ around it; 0.5
  means it has learnt nothing about the lesion, whatever the other numbers say.

It is the cheap, decisive experiment before a fine-tuning table: a scratch row that does not
leave 0.5 here will not do so in the table either. ``--add-hu H`` adds H Hounsfield units to
the tumor voxels of every training crop (a control: is the lesion's density what stops the
network?).

    python tools/analysis_tools/finetune_probe.py configs/finetune/scratch_nnunet_tumor.py \\
        --iters 600 [--every 75] [--add-hu 300] [--lr 1e-3] [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a fine-tuning config (CTSegmentor, a tumor dataset)')
    parser.add_argument('--iters', type=int, default=600, help='training steps (default 600)')
    parser.add_argument('--every', type=int, default=75, help='report interval (default 75)')
    parser.add_argument('--window', type=int, default=12,
                        help='batches with a tumor averaged in each report (default 12)')
    parser.add_argument('--lr', type=float, help="AdamW learning rate (default: the config's)")
    parser.add_argument('--add-hu', type=float, default=0.0,
                        help='HU added to the tumor voxels of every training crop (control)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--json', help='write the curve to this file')
    parser.add_argument('--data-root', help='a manifest folder with tumor masks (default: the '
                        "config's, the phantom tumor set generated on first use)")
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='config overrides, as tools/train.py')
    return parser.parse_args(argv)


def hu_scale(cfg):
    """HU per unit of the network's input: from the pipeline's ScaleIntensityRanged."""
    def find(transforms):
        for t in transforms:
            if t.get('type') == 'ScaleIntensityRanged':
                return (t['a_max'] - t['a_min']) / (t.get('b_max', 1.0) - t.get('b_min', 0.0))
            found = find(t.get('transforms', []))
            if found:
                return found
        return None
    scale = find(cfg.train_dataloader.dataset.pipeline)
    if scale is None:
        from ctglip.utils.errors import ConfigError
        raise ConfigError(f'{cfg.filename}: no ScaleIntensityRanged in the training pipeline, '
                          'so --add-hu cannot be converted to input units. Fix: leave --add-hu '
                          'at 0.')
    return scale


def probe(args):
    import numpy as np
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from sklearn.metrics import roc_auc_score

    from ctglip.datasets.organs import organ_vocabulary
    from ctglip.models.segmentors import CTSegmentor
    from ctglip.registry import MODELS
    from ctglip.utils.errors import ConfigError
    from ctglip.utils.cli import apply_common_args, load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    apply_common_args(cfg, argparse.Namespace(config=args.config, data_root=args.data_root,
                                              work_dir=None, launcher='none'))
    init_default_scope(cfg.get('default_scope', 'ctglip'))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model_cls = MODELS.get(cfg.model.type)
    if model_cls is None or not issubclass(model_cls, CTSegmentor):
        raise ConfigError(f'{args.config}: model {cfg.model.type} is not a tumor segmentor '
                          '(CTSegmentor or a subclass). Fix: give a configs/finetune/ config.')
    model = MODELS.build(cfg.model).train()
    opt_cfg = cfg.optim_wrapper.optimizer
    lr = args.lr or opt_cfg.get('lr', 1e-3)
    decay = opt_cfg.get('weight_decay', 0.01)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    add = args.add_hu / hu_scale(cfg) if args.add_hu else 0.0
    vocab = organ_vocabulary(cfg.model.get('organ_vocab', 'totalseg_v1'))
    organ_ids = torch.tensor([vocab.index(o) + 1 for o in model.tumor_organs])
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    batches = iter(loader)
    recent, curve, t0 = [], [], time.time()
    print(f'{args.config}: {args.iters} steps, lr {lr:g}, add {args.add_hu:g} HU to tumors',
          flush=True)
    for step in range(1, args.iters + 1):
        data = model.data_preprocessor(next(batches), True)
        samples = data['data_samples']
        target = torch.stack([s.tumor_mask for s in samples])[:, None]
        inputs = data['inputs'] + add * (target > 0).float() if add else data['inputs']
        logits = model.logits(inputs)
        loss = model.loss_fn(logits.float(), target.float())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        with torch.no_grad():
            tumor = target > 0
            if tumor.any():
                prob = logits.float().softmax(1)[:, 1:2]
                labels = torch.stack([s.organ_label for s in samples])[:, None]
                region = torch.isin(labels, organ_ids) | tumor
                truth = tumor[region].numpy().ravel()
                auc = roc_auc_score(truth, prob[region].numpy().ravel()) if (
                    truth.any() and not truth.all()) else float('nan')
                recent.append((float(prob[tumor].mean()), float(prob[~tumor].mean()),
                               float((prob[tumor] > 0.5).float().mean()), auc))
        if step % args.every == 0 or step == args.iters:
            window = np.array(recent[-args.window:]) if recent else np.full((1, 4), np.nan)
            row = dict(step=step, loss=float(loss.detach()),
                       p_tumor=float(window[:, 0].mean()),
                       p_bg=float(window[:, 1].mean()), recall=float(window[:, 2].mean()),
                       organ_auc=(float(np.nanmean(window[:, 3]))
                                  if np.isfinite(window[:, 3]).any() else float('nan')),
                       seconds=round(time.time() - t0, 1))
            curve.append(row)
            print(f"step {step:5d}  loss {row['loss']:.4f}  p_tumor {row['p_tumor']:.3f}  "
                  f"p_bg {row['p_bg']:.4f}  recall {row['recall']:.3f}  "
                  f"organ AUC {row['organ_auc']:.3f}  {row['seconds']:.0f} s", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, lr=lr, add_hu=args.add_hu, seed=args.seed,
                           curve=curve), f, indent=2)
    return curve


def main(argv=None):
    from ctglip.utils.cli import run_cli
    args = parse_args(argv)
    return run_cli(lambda _argv: probe(args))


if __name__ == '__main__':
    sys.exit(main())
