"""What the image encoder can learn about abnormalities at a given budget, with labels.

    python tools/analysis_tools/abnormality_supervised.py CONFIG [--iters N] [--data-root DIR]

It trains the config's backbone and organ pooler from scratch, with the config's training
pipeline, batch size, optimiser and learning-rate schedule, but with a supervised head instead
of text: a linear layer on each pooled organ feature predicts the organ's abnormalities (binary
cross-entropy over the abnormalities of the organ's group, positives up-weighted by their
rarity). The test split's per-abnormality AUC is then the ceiling that contrastive pretraining
of the same encoder can be expected to reach with the same number of iterations: text
supervision is weaker than labels.

It separates two causes of near-chance zero-shot abnormality detection: a supervised AUC near
chance means the encoder cannot learn the findings at this budget (more iterations, resolution
or a different pooler are needed); a high supervised AUC puts the fault on the contrastive
objective or the prompts.

The head is conditioned so that it converges within the budget whatever the scale of the
pooled features: they are standardised per organ (``SupervisedHead``: the cumulative mean
and spread of the training rows of the same organ) and the head has its own learning rate
without weight decay (``--head-lr``, default 1e-2), while the encoder keeps the config's
optimiser. With the
config's small learning rate and weight decay a plain linear head hardly leaves its random
initialisation in a few hundred iterations, and its AUCs then carry the sign of the initial
weights. ``--cfg-options`` edits the config as in ``tools/train.py`` (the ladder of
``tools/analysis_tools/abnormality_ladder.py`` swaps backbones and poolers with it).
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def label_rows(samples, organ_vocab, valid, names, index):
    """(study, organ index) rows of the abnormality groups and their N x A targets and mask."""
    import torch
    from ctglip.datasets.organs import ABNORMALITIES, organ_group
    rows, targets, masks = [], [], []
    for b, sample in enumerate(samples):
        truth = sample.get('abnormalities') or {}
        for k in torch.nonzero(valid[b]).flatten().tolist():
            group = organ_group(organ_vocab[k])
            if group is None:
                continue
            t, m = torch.zeros(len(names)), torch.zeros(len(names))
            for a in ABNORMALITIES[group]:
                m[index[a]] = 1
                t[index[a]] = float(a in truth.get(organ_vocab[k], []))
            rows.append((b, k))
            targets.append(t)
            masks.append(m)
    if not rows:
        return rows, None, None
    return rows, torch.stack(targets), torch.stack(masks)


def main(argv=None, overrides=None):
    """Run the harness; ``overrides`` is a dict merged into the config after ``--cfg-options``
    (``_delete_`` honoured), as the ladder uses it. Returns the summary that ``--json`` writes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, help='training iterations (default: the config\'s)')
    parser.add_argument('--data-root')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--splits', nargs='+', default=['test'],
                        choices=['train', 'val', 'test'],
                        help='splits to report AUC on, with the test pipeline (train next to '
                             'test tells under-fitting from over-fitting)')
    parser.add_argument('--device', help='torch device (default: cuda when available, else cpu)')
    parser.add_argument('--head-lr', type=float, default=1e-2,
                        help='learning rate of the head (no weight decay; default 1e-2)')
    parser.add_argument('--head-norm', choices=['organ', 'none'], default='organ',
                        help='standardise pooled features per organ with the running mean and '
                        'std of its training rows before the head (default organ)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='config overrides, as in tools/train.py')
    parser.add_argument('--json', help='write the per-abnormality AUCs and timing here')
    args = parser.parse_args(argv)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    import ctglip.datasets  # noqa: F401
    from ctglip.datasets.organs import all_abnormalities
    from ctglip.registry import DATASETS, MODELS
    from ctglip.utils.cli import load_config
    torch.manual_seed(args.seed)
    # --iters moves the end of the config's iteration schedulers, as in tools/train.py
    cfg = load_config(args.config, list(args.cfg_options)
                      + ([f'train_cfg.max_iters={args.iters}'] if args.iters else []))
    if overrides:
        cfg.merge_from_dict(overrides)
    model = MODELS.build(cfg.model)
    names = list(all_abnormalities())
    index = {a: i for i, a in enumerate(names)}
    head = supervised_head(model.pooled_channels, len(names), len(model.organ_vocab),
                           args.head_norm)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model.to(device)  # the data preprocessor moves each batch to the model's device
    head.to(device)
    trained = nn.ModuleDict(dict(backbone=model.backbone, pooler=model.pooler,
                                 abnormality_head=head))
    optim_cfg = cfg.optim_wrapper.copy()  # the config's optimiser and clipping for the encoder
    base_lr = optim_cfg.optimizer.lr
    optim_cfg.paramwise_cfg = dict(custom_keys={'abnormality_head': dict(
        lr_mult=args.head_lr / base_lr, decay_mult=0.0)})
    optim_wrapper = build_optim_wrapper(trained, optim_cfg)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optim_wrapper))
                  for s in cfg.param_scheduler]
    iters = cfg.train_cfg.max_iters

    def dataset(split, train):
        ds_cfg = (cfg.train_dataloader if train else cfg.test_dataloader).dataset.copy()
        ds_cfg.split = split
        if args.data_root:
            ds_cfg.data_root, ds_cfg.phantom = args.data_root, None
        return DATASETS.build(ds_cfg)

    train_ds = dataset('train', True)
    pos = np.zeros(len(names))
    for i in range(len(train_ds)):
        info = train_ds.get_data_info(i)
        for organ, abns in (info.get('abnormalities') or {}).items():
            for a in abns:
                if a in index:
                    pos[index[a]] += 1
    n_train = len(train_ds)
    pos_weight = torch.tensor(np.clip((n_train - pos) / np.maximum(pos, 1), 1, 50),
                              dtype=torch.float32, device=device)
    loader = DataLoader(train_ds, batch_size=cfg.train_dataloader.batch_size, shuffle=True,
                        num_workers=cfg.train_dataloader.get('num_workers', 0),
                        collate_fn=pseudo_collate, drop_last=True,
                        persistent_workers=cfg.train_dataloader.get('num_workers', 0) > 0)
    model.train()
    head.train()
    t0 = time.time()
    it, losses = 0, []
    bar = tqdm(total=iters, desc='supervised training', unit='it')
    while it < iters:
        for batch in loader:
            data = model.data_preprocessor(batch, True)
            embeds, valid = model.embed_organs(data['inputs'], data['data_samples'])
            rows, targets, masks = label_rows(data['data_samples'], model.organ_vocab, valid,
                                              names, index)
            if rows:
                b, k = zip(*rows)
                logits = head(embeds[list(b), list(k)], torch.tensor(k, device=device))
                targets, masks = targets.to(device), masks.to(device)
                loss = F.binary_cross_entropy_with_logits(
                    logits, targets, pos_weight=pos_weight, reduction='none')
                loss = (loss * masks).sum() / masks.sum()
                optim_wrapper.update_params(loss)
                losses.append(loss.item())
            for scheduler in schedulers:
                scheduler.step()
            it += 1
            bar.update(1)
            if it % 10 == 0:
                bar.set_postfix(loss=f'{np.mean(losses[-10:]):.3f}')
            if it >= iters:
                break
    bar.close()
    train_s = time.time() - t0
    model.eval()
    head.eval()
    print(f'\nsupervised ceiling of {osp.basename(args.config)}: {iters} iterations '
          f'({train_s / 60:.1f} min on {device.type})\n')
    results = {split: evaluate(model, head, dataset(split, False), names, index)
               for split in args.splits}
    print('| abnormality | ' + ' | '.join(f'{s} units (pos) | {s} AUC' for s in args.splits)
          + ' |')
    print('|---|' + '---:|---:|' * len(args.splits))
    for j, a in enumerate(names):
        cells = []
        for split in args.splits:
            y, auc = results[split][j]
            cells += [f'{len(y)} ({int(y.sum())})', 'n/a' if auc is None else f'{auc:.3f}']
        print(f'| {a} | ' + ' | '.join(cells) + ' |')
    summary = dict(config=args.config, iters=iters, train_minutes=train_s / 60,
                   device=device.type, cfg_options=list(args.cfg_options),
                   head_lr=args.head_lr, head_norm=args.head_norm,
                   train_studies_seen=iters * cfg.train_dataloader.batch_size,
                   train_studies=n_train)
    for split in args.splits:
        aucs = [auc for _, auc in results[split] if auc is not None]
        mean = f'{np.mean(aucs):.3f}' if aucs else 'n/a (no abnormality with both classes)'
        print(f'mean supervised {split} AUC {mean} over {len(aucs)} abnormalities')
        summary[split] = dict(mean_auc=float(np.mean(aucs)) if aucs else None,
                              auc={a: auc for a, (_, auc) in zip(names, results[split])},
                              positives={a: int(y.sum()) for a, (y, _) in
                                         zip(names, results[split])})
    if args.json:
        import json
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


def evaluate(model, head, ds, names, index):
    """Per abnormality: (labels array, AUC or None when one class is absent) on ``ds``."""
    import torch
    from mmengine.dataset import pseudo_collate
    from sklearn.metrics import roc_auc_score
    from tqdm import tqdm
    scores, labels = [[] for _ in names], [[] for _ in names]
    with torch.no_grad():
        for start in tqdm(range(0, len(ds), 2), desc=f'{ds.split} split', unit='batch'):
            items = [ds[i] for i in range(start, min(start + 2, len(ds)))]
            data = model.data_preprocessor(pseudo_collate(items), False)
            embeds, valid = model.embed_organs(data['inputs'], data['data_samples'])
            rows, targets, masks = label_rows(data['data_samples'], model.organ_vocab, valid,
                                              names, index)
            if not rows:
                continue
            b, k = zip(*rows)
            organs = torch.tensor(k, device=embeds.device)
            logits = head(embeds[list(b), list(k)], organs).cpu()  # one copy, not per score
            for r in range(len(rows)):
                for j in torch.nonzero(masks[r]).flatten().tolist():
                    scores[j].append(float(logits[r, j]))
                    labels[j].append(int(targets[r, j]))
    out = []
    for j in range(len(names)):
        y = np.array(labels[j], dtype=int)
        out.append((y, roc_auc_score(y, scores[j]) if len(set(y)) == 2 else None))
    return out


def supervised_head(in_channels, num_outputs, num_organs, norm='organ'):
    """Per-organ standardisation (optional) and a linear layer: pooled features -> logits."""
    return SupervisedHead(in_channels, num_outputs, num_organs, norm)


class SupervisedHead(torch.nn.Module):
    """A linear layer on pooled organ features standardised per organ.

    ``norm='organ'``: each feature is centred and scaled with the running mean and spread of
    the training rows of the same organ (vocabulary index), so the head sees how an organ
    differs from others of its kind. One head serves every organ, and between organs a
    feature differs far more than within one (a lung's mean HU against a liver's): standardised
    over all rows, an organ's feature is nearly a constant and its small within-organ
    variation, which carries the finding, is fitted as slowly as the intercept (measured:
    input as the map with a masked mean, a plain linear head learnt the wrong sign for
    steatosis, emphysema and wall thickening, test AUC 0.05-0.17, train AUC alike). Statistics
    are cumulative over training, never one batch's, and frozen at test. ``'none'``: raw.
    """

    def __init__(self, in_channels, num_outputs, num_organs, norm='organ', eps=1e-5):
        super().__init__()
        if norm not in ('organ', 'none'):
            raise ValueError(f"SupervisedHead norm={norm!r}; use 'organ' or 'none'.")
        self.norm, self.eps = norm, eps
        self.linear = torch.nn.Linear(in_channels, num_outputs)
        self.register_buffer('count', torch.zeros(num_organs))
        self.register_buffer('total', torch.zeros(num_organs, in_channels))
        self.register_buffer('total_sq', torch.zeros(num_organs, in_channels))

    def forward(self, x, organ_index):
        """``x`` N x C features of rows whose organs are ``organ_index`` (N, long)."""
        if self.norm == 'organ':
            if self.training:
                with torch.no_grad():
                    flat = x.detach().float()
                    self.count.index_add_(0, organ_index, torch.ones_like(flat[:, 0]))
                    self.total.index_add_(0, organ_index, flat)
                    self.total_sq.index_add_(0, organ_index, flat ** 2)
            n = self.count[organ_index].clamp(min=1)[:, None]
            mean = self.total[organ_index] / n
            std = (self.total_sq[organ_index] / n - mean ** 2).clamp(min=0).sqrt()
            x = (x - mean) / (std + self.eps)
        return self.linear(x)


if __name__ == '__main__':
    main()
