"""Soft-target symmetric InfoNCE shared by ctglip's contrastive losses."""
from dataclasses import dataclass, fields, replace
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ContrastiveTargets:
    """Texts and targets of one contrastive term for N image rows.

    Attributes:
        texts: the M text candidates (unique).
        pos: N x M bool, True where text j describes image row i.
        rows: indices of the image rows that take part (default: all).
        ignore: N x M bool, pairs left out of the softmax (neither positive nor negative).
        row_weights: N float, weights of the image->text terms (sum to 1).
        row_groups: ``{name: N bool}`` subsets of rows whose top-1 accuracy is logged as
            ``acc_<term>_<name>`` (e.g. the abnormal organs of the diagnosis term, whose
            accuracy the overall one, dominated by normal organs, hides).
    """
    texts: List[str]
    pos: torch.Tensor
    rows: Optional[torch.Tensor] = None
    ignore: Optional[torch.Tensor] = None
    row_weights: Optional[torch.Tensor] = None
    row_groups: Optional[dict] = None

    def to(self, device):
        """These targets with every tensor (also those in ``row_groups``) on ``device``."""
        def move(x):
            if isinstance(x, torch.Tensor):
                return x.to(device)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return x
        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})


def soft_infonce(image_embeds, text_embeds, pos, logit_scale, ignore=None, row_weights=None):
    """Symmetric InfoNCE where several texts can be right for a row and several rows for a text.

    Image->text: each row's target is uniform over its positive texts. Text->image: each text
    with at least one positive row has a target uniform over those rows (texts with none, such
    as dictionary entries, only act as negatives). Identical texts being merged into one
    candidate, two kidneys or two normal livers in a batch are never pushed apart.

    Args:
        image_embeds: N x D, L2-normalised.
        text_embeds: M x D, L2-normalised.
        pos: N x M bool; each row needs at least one positive.
        logit_scale: scalar tensor (1 / temperature).
        ignore: N x M bool pairs to leave out of both softmaxes.
        row_weights: N weights of the image->text terms (default uniform).

    Returns:
        tuple: (loss, image->text top-1 accuracy).
    """
    logits = logit_scale * image_embeds @ text_embeds.t()
    if ignore is not None:
        logits = logits.masked_fill(ignore & ~pos, float('-inf'))
    posf = pos.to(logits.dtype)
    i2t = _soft_ce(logits, posf / posf.sum(1, keepdim=True))
    if row_weights is None:
        loss_i2t = i2t.mean()
    else:
        loss_i2t = (i2t * row_weights).sum() / row_weights.sum()
    cols = pos.any(0)
    t_pos = posf.t()[cols]
    loss_t2i = _soft_ce(logits.t()[cols], t_pos / t_pos.sum(1, keepdim=True)).mean()
    with torch.no_grad():
        acc = pos.gather(1, logits.argmax(1, keepdim=True)).float().mean()
    return (loss_i2t + loss_t2i) / 2, acc


def _soft_ce(logits, target):
    logp = F.log_softmax(logits, dim=1)
    return -torch.where(target > 0, target * logp, torch.zeros_like(logp)).sum(1)


class ContrastiveLoss(nn.Module):
    """Base of ctglip's contrastive terms: a subclass builds texts and targets from rows.

    A row is one image embedding: ``(study index, organ name or None)``; studies carry
    ``report``, ``findings``, ``status`` and ``abnormalities``. The model encodes the texts,
    projects both sides and calls ``forward``.

    Args:
        weight: factor of this term in the total loss.
    """
    name = 'contrastive'

    def __init__(self, weight=1.0):
        super().__init__()
        self.weight = weight

    def build_targets(self, rows, studies) -> ContrastiveTargets:
        raise NotImplementedError

    def forward(self, image_embeds, text_embeds, targets, logit_scale):
        # targets are built on the CPU; all of them meet the embeddings on their device
        targets = targets.to(image_embeds.device)
        if targets.rows is not None:
            image_embeds = image_embeds[targets.rows]
        if image_embeds.shape[0] == 0:
            zero = image_embeds.sum() * 0 + text_embeds.sum() * 0
            return {f'loss_{self.name}': zero, f'acc_{self.name}': zero.detach()}
        loss, acc = soft_infonce(image_embeds, text_embeds, targets.pos, logit_scale,
                                 targets.ignore, targets.row_weights)
        out = {f'loss_{self.name}': self.weight * loss, f'acc_{self.name}': acc}
        for group, mask in (targets.row_groups or {}).items():
            if bool(mask.any()):
                correct = _top1_correct(image_embeds[mask], text_embeds, targets.pos[mask],
                                        None if targets.ignore is None else targets.ignore[mask])
                out[f'acc_{self.name}_{group}'] = correct.mean()
        return out


@torch.no_grad()
def _top1_correct(image_embeds, text_embeds, pos, ignore=None):
    """1.0 for each row whose most similar text is one of its positives, else 0.0."""
    sims = image_embeds @ text_embeds.t()
    if ignore is not None:
        sims = sims.masked_fill(ignore & ~pos, float('-inf'))
    return pos.gather(1, sims.argmax(1, keepdim=True)).squeeze(1).float()


def unique_targets(row_texts):
    """Deduplicate per-row texts: returns (texts, pos N x M) with pos[i, j] = text_i == texts[j]."""
    texts = list(dict.fromkeys(row_texts))
    index = {t: j for j, t in enumerate(texts)}
    pos = torch.zeros(len(row_texts), len(texts), dtype=torch.bool)
    if row_texts:
        pos[torch.arange(len(row_texts)), torch.tensor([index[t] for t in row_texts])] = True
    return texts, pos
