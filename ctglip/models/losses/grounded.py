"""The contrastive terms of CT-GLIP: anatomy, diagnosis (with the abnormality dictionary) and
the vanilla-CLIP global term."""
import json
import os.path as osp
import random

import torch

from ctglip.registry import LOSSES
from ctglip.utils.errors import ConfigError
from ctglip.vocabularies import load_abnormality_vocab, readable_name

from .base import ContrastiveLoss, ContrastiveTargets, unique_targets

RESOURCES = osp.join(osp.dirname(osp.dirname(osp.dirname(__file__))), 'resources')
DEFAULT_DICTIONARY = osp.join(RESOURCES, 'abnormality_dictionary.json')


@LOSSES.register_module()
class AnatomyContrastiveLoss(ContrastiveLoss):
    """Organ embeddings vs. template descriptions of their organ ("This is the left kidney.").

    Each step draws one template per organ, so all rows of one organ share one text and are
    positives of each other (soft targets), never negatives.

    Args:
        templates: templates with ``{organ}``, filled with the readable organ name.
        random_template: draw a template per organ and step during training (else the first).
        weight: factor in the total loss.
    """
    name = 'anatomy'

    def __init__(self, templates=('This is the {organ}.',), random_template=True, weight=1.0):
        super().__init__(weight)
        self.templates = list(templates)
        self.random_template = random_template

    def build_targets(self, rows, studies):
        chosen = {}
        for _, organ in rows:
            if organ not in chosen:
                t = random.choice(self.templates) if (self.training and self.random_template) \
                    else self.templates[0]
                chosen[organ] = t.format(organ=readable_name(organ))
        texts, pos = unique_targets([chosen[organ] for _, organ in rows])
        return ContrastiveTargets(texts, pos)


@LOSSES.register_module()
class DiagnosisContrastiveLoss(ContrastiveLoss):
    """Organ embeddings vs. their diagnosis: the report's findings when abnormal, a normal
    template when normal, plus abnormality-dictionary entries as extra candidates.

    Normal organs of one kind share one text (positives of each other). Dictionary entries of
    an organ's group are extra negatives for a normal organ and for the other abnormalities of
    an abnormal one; entries of the organ's own abnormalities are positives
    (``dictionary_own='positive'``) or left out (``'ignore'``). An entry that does not name its
    organ ("Renal calculus.") is one of the own abnormalities of every organ of its group
    that has it (both kidneys, all five lobes).

    Args:
        normal_template: text of a normal organ, with ``{organ}``.
        dictionary: path of the abnormality dictionary JSON (``'default'``: the dictionary of
            the abnormality vocabulary, shipped in ``ctglip/resources``), or None for no
            dictionary. It must cover the vocabulary (checked when the loss is built).
        dictionary_own: ``positive`` or ``ignore`` (see above).
        organs: ``all`` valid organs take part, or ``grouped`` (only the organs of the
            abnormality vocabulary's groups).
        balance: weight abnormal and normal rows equally (abnormal rows are rare; without it
            the term reaches its floor once organ identity is learned).
        weight: factor in the total loss.
        abnormality_vocab: the abnormality vocabulary (organ groups and their abnormalities);
            the model passes its own, and the dictionary must cover it. None: the default
            vocabulary, and a dictionary may hold part of it.
    """
    name = 'diagnosis'

    def __init__(self, normal_template='The {organ} shows no evident abnormality.',
                 dictionary=None, dictionary_own='positive', organs='all', balance=True,
                 weight=1.0, abnormality_vocab=None):
        super().__init__(weight)
        if dictionary_own not in ('positive', 'ignore'):
            raise ConfigError(f"DiagnosisContrastiveLoss.dictionary_own={dictionary_own!r}; use "
                              "'positive' or 'ignore'.")
        if organs not in ('all', 'grouped'):
            raise ConfigError(f"DiagnosisContrastiveLoss.organs={organs!r}; use 'all' or 'grouped'.")
        self.normal_template = normal_template
        self.abnormality_vocab = load_abnormality_vocab(abnormality_vocab)
        self.dictionary = load_dictionary(dictionary, abnormality_vocab) if dictionary else None
        self.dictionary_own = dictionary_own
        self.organs = organs
        self.balance = balance
        self._entries = {}  # organ -> its dictionary entries, filled on first use

    def diagnosis_text(self, organ, study):
        if study['status'].get(organ) != 'abnormal':
            return self.normal_template.format(organ=readable_name(organ))
        sentences = (study['findings'] or {}).get(organ)
        if sentences:
            return ' '.join(sentences)
        names = (study['abnormalities'] or {}).get(organ) or ['an abnormality']
        return f'The {readable_name(organ)} shows {", ".join(names)}.'

    def build_targets(self, rows, studies):
        used = [i for i, (_, organ) in enumerate(rows)
                if self.organs == 'all' or self.abnormality_vocab.groups_of(organ)]
        row_texts = [self.diagnosis_text(rows[i][1], studies[rows[i][0]]) for i in used]
        texts, pos = unique_targets(row_texts)
        ignore = None
        if self.dictionary is not None:
            texts, pos, ignore = self._add_dictionary([rows[i] for i in used], studies, texts, pos)
        abnormal = torch.tensor([studies[rows[i][0]]['status'].get(rows[i][1]) == 'abnormal'
                                 for i in used], dtype=torch.bool)
        weights = None
        if self.balance and 0 < int(abnormal.sum()) < len(used):
            weights = torch.where(abnormal, 0.5 / abnormal.sum(), 0.5 / (~abnormal).sum())
        return ContrastiveTargets(texts, pos, rows=torch.tensor(used, dtype=torch.long),
                                  ignore=ignore, row_weights=weights,
                                  row_groups=dict(abnormal=abnormal))

    def _organ_entries(self, organ):
        """The dictionary's ``(text, abnormality)`` entries for one organ, filled once."""
        if organ not in self._entries:
            self._entries[organ] = [(d.format(organ=readable_name(organ)), abnormality)
                                    for group in self.abnormality_vocab.groups_of(organ)
                                    for abnormality, descriptions
                                    in self.dictionary.get(group, {}).items()
                                    for d in descriptions]
        return self._entries[organ]

    def _add_dictionary(self, rows, studies, texts, pos):
        """Append the dictionary entries of the rows' organ groups to ``texts``.

        An entry stands for one abnormality of the organ it was filled for; a description
        without ``{organ}`` ("Renal calculus.") comes out the same for every organ of its group,
        so after merging identical texts it stands for that abnormality in each of them (both
        kidneys, all five lobes). A description with ``{organ}`` names one organ and stays a
        negative for its siblings. An entry is a target (positive, or ignored with
        ``dictionary_own='ignore'``) of each abnormal row whose (organ, abnormality) it stands
        for, including entries equal to a row's finding text, whose column the finding's rows
        keep as a positive. Entries equal to a normal template are never targets of an
        abnormal row.

        Returns:
            tuple: (texts, pos N x M, ignore N x M or None).
        """
        organs = list(dict.fromkeys(organ for _, organ in rows))
        stands_for = {}  # text -> [(organ, abnormality)]
        for organ in organs:
            for text, abnormality in self._organ_entries(organ):
                stands_for.setdefault(text, []).append((organ, abnormality))
        known = set(texts)
        texts = texts + [t for t in stands_for if t not in known]
        normal_texts = {self.normal_template.format(organ=readable_name(o)) for o in organs}
        columns = {}  # (organ, abnormality) -> columns of the entries standing for it
        for j, text in enumerate(texts):
            if text not in normal_texts:
                for pair in stands_for.get(text, ()):
                    columns.setdefault(pair, []).append(j)
        own = torch.zeros(len(rows), len(texts), dtype=torch.bool)
        for i, (s, organ) in enumerate(rows):
            if studies[s]['status'].get(organ) != 'abnormal':
                continue
            for name in (studies[s]['abnormalities'] or {}).get(organ) or []:
                for j in columns.get((organ, name), ()):
                    own[i, j] = True
        pos = torch.cat([pos, pos.new_zeros(len(rows), len(texts) - pos.shape[1])], 1)
        if self.dictionary_own == 'positive':
            return texts, pos | own, None
        return texts, pos, own & ~pos


def load_dictionary(path, abnormality_vocab=None):
    """Read an abnormality dictionary ``{group: {abnormality: [description]}}``.

    Args:
        path (str): the JSON file, or ``'default'`` for the vocabulary's own dictionary.
        abnormality_vocab: the vocabulary the dictionary must cover, every group and
            abnormality and nothing else (a miss is a one-line ConfigError that names what is
            missing). None: the groups of the default vocabulary, without requiring all of
            them (a hand-made dictionary for a loss built on its own).
    """
    vocab = load_abnormality_vocab(abnormality_vocab)
    if path == 'default':
        path = vocab.dictionary_file or DEFAULT_DICTIONARY
    if not osp.isfile(path):
        raise ConfigError(f'abnormality dictionary {path} does not exist. Fix: set '
                          "DiagnosisContrastiveLoss.dictionary to 'default', None or a JSON file.")
    with open(path) as f:
        raw = json.load(f)
    table = {g: v for g, v in raw.items() if not g.startswith('_')}
    vocab.check_covers(table, 'abnormality dictionary', path,
                       complete=abnormality_vocab is not None)
    return table


@LOSSES.register_module()
class CLIPLoss(ContrastiveLoss):
    """Vanilla CLIP: one global embedding per study vs. the study's report.

    Identical texts (e.g. two all-normal findings) are merged, so they are positives of each
    other rather than false negatives.

    Args:
        text_source: ``report`` (whole report) or ``findings`` (the sentences of the abnormal
            organs, or ``normal_text`` when there are none).
        normal_text: text of a study without abnormal findings (``findings`` source).
        weight: factor in the total loss.
    """
    name = 'clip'

    def __init__(self, text_source='report', normal_text='No evident abnormality.', weight=1.0):
        super().__init__(weight)
        if text_source not in ('report', 'findings'):
            raise ConfigError(f"CLIPLoss.text_source={text_source!r}; use 'report' or 'findings'.")
        self.text_source = text_source
        self.normal_text = normal_text

    def study_text(self, study):
        if self.text_source == 'report' and study['report']:
            return study['report']
        sentences = [s for organ, v in (study['findings'] or {}).items()
                     if study['status'].get(organ) == 'abnormal' for s in v]
        return ' '.join(dict.fromkeys(sentences)) or self.normal_text

    def build_targets(self, rows, studies):
        texts, pos = unique_targets([self.study_text(studies[s]) for s, _ in rows])
        return ContrastiveTargets(texts, pos)
