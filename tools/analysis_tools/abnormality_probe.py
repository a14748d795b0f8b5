"""Where zero-shot abnormality detection loses its signal: image side or text side.

    python tools/analysis_tools/abnormality_probe.py CONFIG CHECKPOINT [--data-root DIR]
        [--fit-split train|val]

For each abnormality it compares on the test split (1) the zero-shot AUC (organ embedding vs.
the positive/negative prompts) with (2) the AUC of a logistic-regression probe fit on the
organ embeddings of the training split (``--fit-split``; the same embeddings, no text; all
splits go through the config's deterministic test pipeline), and (3) reports how far
apart the prompts are for the frozen text encoder (cosine of the positive and negative
prompt ensembles; 1.0 means the text cannot tell them apart). A high probe AUC with a low
zero-shot AUC puts the loss on the text side; a low probe AUC on the image side.
CHECKPOINT ``none`` probes the randomly initialised model: what the architecture's pooled
features carry before any training.
"""
import argparse
import os.path as osp
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def embeddings(model, dataset, batch_size=2):
    import torch
    from ctglip.datasets.organs import ORGAN_GROUPS, organ_group
    units = []  # (abnormality, organ, embedding, zero-shot score, label)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = dict(inputs=[i['inputs'] for i in items],
                     data_samples=[i['data_samples'] for i in items])
        with torch.no_grad():
            out = model(**model.data_preprocessor(batch), mode='predict')
        for sample in out:
            truth = sample.get('abnormalities') or {}
            for organ, scores in sample.abn_scores.items():
                k = model.organ_vocab.index(organ)
                for abnormality, score in scores.items():
                    units.append((abnormality, organ, sample.organ_embeds[k].numpy(), score,
                                  abnormality in truth.get(organ, [])))
    return units


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data-root')
    parser.add_argument('--fit-split', default='train', choices=['train', 'val'],
                        help='split the probe is fit on (default train)')
    parser.add_argument('--device', help='torch device (default: cuda when available, else cpu)')
    args = parser.parse_args(argv)
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config, ConfigDict
    from mmengine.runner import load_checkpoint
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.metrics import roc_auc_score

    import ctglip.engine  # noqa: F401  (checkpoint loading fix)
    from ctglip.datasets.organs import readable_name
    from ctglip.models.ctglip import abnormality_prompt_texts
    from ctglip.registry import DATASETS, MODELS
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint != 'none':
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    # the data preprocessor moves each batch to the model's device
    model.to(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    data = {}
    for split in (args.fit_split, 'test'):
        ds_cfg = cfg[f'{split}_dataloader'].dataset if split != 'train' else \
            ConfigDict(cfg.val_dataloader.dataset, split='train')
        if args.data_root:
            ds_cfg.data_root, ds_cfg.phantom = args.data_root, None
        data[split] = embeddings(model, DATASETS.build(ds_cfg))
    prompts = model.prompts
    print(f'{osp.basename(args.checkpoint)} of {osp.basename(args.config)}\n')
    print('| abnormality | test units (pos) | zero-shot AUC | linear-probe AUC | '
          'cos(pos, neg prompts) |')
    print('|---|---:|---:|---:|---:|')
    zs, probe = [], []
    for group, entries in prompts['abnormalities'].items():
        for abnormality, p in entries.items():
            val = [u for u in data[args.fit_split] if u[0] == abnormality]
            test = [u for u in data['test'] if u[0] == abnormality]
            yv = np.array([u[4] for u in val])
            yt = np.array([u[4] for u in test])
            if len(set(yt)) < 2:
                continue
            auc_zs = roc_auc_score(yt, [u[3] for u in test])
            auc_probe = float('nan')
            if len(set(yv)) == 2:
                clf = make_pipeline(StandardScaler(), LogisticRegression(
                    max_iter=2000, class_weight='balanced', C=0.1))
                clf.fit(np.stack([u[2] for u in val]), yv)
                auc_probe = roc_auc_score(yt, clf.decision_function(np.stack([u[2] for u in test])))
                probe.append(auc_probe)
            zs.append(auc_zs)
            organ = test[0][1]
            name = readable_name(organ)
            with torch.no_grad():
                pos, neg = (F.normalize(model.encode_text(texts).mean(0), dim=0)
                            for texts in abnormality_prompt_texts(prompts, p, name))
            print(f'| {abnormality} | {len(yt)} ({int(yt.sum())}) | {auc_zs:.3f} | '
                  f'{auc_probe:.3f} | {float(pos @ neg):.3f} |')
    print(f'\nmean zero-shot AUC {np.mean(zs):.3f}; mean probe AUC {np.nanmean(probe):.3f} '
          f'({len(probe)} abnormalities with both classes in {args.fit_split})')


if __name__ == '__main__':
    main()
