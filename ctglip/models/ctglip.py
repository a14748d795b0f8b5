"""CT-GLIP: a 3D image encoder whose organ-pooled embeddings align with organ-level text."""
import json
import math
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from ctglip.registry import BACKBONES, LOSSES, MODELS, POOLERS, TEXT_ENCODERS
from ctglip.utils.errors import ConfigError
from ctglip.vocabularies import load_abnormality_vocab, organ_vocabulary, readable_name

from .losses.gather import gather_features, gather_objects

DEFAULT_PROMPTS = osp.join(osp.dirname(osp.dirname(__file__)), 'resources',
                           'zeroshot_prompts.json')


@MODELS.register_module()
class CTGLIP(BaseModel):
    """Grounded (or global) contrastive pretraining of a 3D CT encoder with text.

    The backbone turns ``B x 1 x X x Y x Z`` CT into a feature map; the pooler reduces it to
    one embedding per organ (``B x K x C``, or ``B x 1 x C`` for a global pooler) using the
    organ label maps; both image and text sides are projected and L2-normalised; each loss
    builds its texts and targets from the organ rows. Variants of the method (vanilla CLIP,
    anatomy-only, CT-GLIP with or without the dictionary) are different ``pooler`` and
    ``losses`` configs of this one class.

    Args:
        backbone: BACKBONES config.
        pooler: POOLERS config; built with ``num_organs`` and ``in_channels``.
        text_encoder: TEXT_ENCODERS config.
        losses: list of LOSSES configs (each returns ``loss_<name>`` and ``acc_<name>``).
        organ_vocab: the organ vocabulary (default: the 104 TotalSegmentator v1 organs).
        embed_dim: size of the shared embedding space.
        projection: extra ``ProjectionHead`` options (``kind='mlp'``).
        init_temperature: initial softmax temperature (learned as ``log(1 / T)``).
        max_logit_scale: clamp of ``1 / T``.
        test_pooler: pooler for ``predict`` (vanilla CLIP is evaluated on organ-pooled
            features: ``dict(type='OrganMaskPooler')``); None uses ``pooler``.
        intensity_skip: MODELS config of a raw-intensity skip (``OrganIntensityStats``):
            statistics of each organ's HU at input resolution, concatenated to its pooled
            features before the projection. With a global pooler the statistics are those of
            all labelled voxels as one region. None (the paper's model): pooled features only.
        prompts: zero-shot prompt JSON (format in DESIGN.md); None for the default prompt file
            of the abnormality vocabulary. It must cover the vocabulary (checked here).
        nonfinite: what a NaN or infinite loss or gradient does: ``stop`` (raise, naming the
            iteration, the term and the last good checkpoint) or ``skip`` (drop the batch
            and count it in the logged ``skipped_batches``).
        log_texts: log the texts of the first training batch (debugging only: report text
            is patient data and never goes to logs by default).
        data_preprocessor: defaults to ``CTDataPreprocessor`` padded to the backbone stride.
        abnormality_vocab: the abnormality vocabulary (organ groups and their abnormalities;
            :func:`~ctglip.vocabularies.load_abnormality_vocab`): a shipped name (``default``,
            ``ct_rate``), a JSON path or a dict. Configs set it once, as the top-level key
            ``abnormality_vocab``; the losses that take one receive the model's.
    """

    def __init__(self, backbone, pooler, text_encoder, losses, organ_vocab='totalseg_v1',
                 embed_dim=256, projection=None, init_temperature=0.07, max_logit_scale=100.0,
                 test_pooler=None, intensity_skip=None, prompts=None, nonfinite='stop',
                 log_texts=False, data_preprocessor=None, init_cfg=None,
                 abnormality_vocab=None):
        self.backbone_cfg = backbone
        backbone = BACKBONES.build(backbone)
        if data_preprocessor is None:
            data_preprocessor = dict(type='CTDataPreprocessor')
        if isinstance(data_preprocessor, dict) and data_preprocessor.get('size_divisor') is None:
            data_preprocessor = dict(data_preprocessor,
                                     size_divisor=getattr(backbone, 'size_divisor', None))
        if isinstance(data_preprocessor, dict):  # ctglip's registry: no default scope needed
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.organ_vocab = organ_vocabulary(organ_vocab)
        num_organs = len(self.organ_vocab)
        self.abnormality_vocab = load_abnormality_vocab(abnormality_vocab)
        unscored = self.abnormality_vocab.check_organs(
            self.organ_vocab, f'the model organ vocabulary ({organ_vocab!r})')
        if unscored:
            from mmengine.logging import print_log
            print_log(f'abnormality vocabulary {self.abnormality_vocab.name!r}: groups {unscored} '
                      'have no organ in the model organ vocabulary; their abnormalities are not '
                      'scored', logger='current', level=30)
        self.backbone = backbone
        channels = backbone.out_channels
        self.pooler = POOLERS.build(pooler, default_args=dict(num_organs=num_organs,
                                                              in_channels=channels))
        self.test_pooler = None if test_pooler is None else POOLERS.build(
            test_pooler, default_args=dict(num_organs=num_organs, in_channels=channels))
        pooled = self.pooler.out_channels(channels)
        if self.test_pooler is not None and self.test_pooler.out_channels(channels) != pooled:
            raise ConfigError(f'test_pooler gives {self.test_pooler.out_channels(channels)} '
                              f'channels but pooler gives {pooled}; they share one projection.')
        self.intensity_skip = None if intensity_skip is None else MODELS.build(intensity_skip)
        if self.intensity_skip is not None:
            pooled += self.intensity_skip.out_channels
        self.pooled_channels = pooled  # C' of embed_organs, the image projection's input
        self.text_encoder = TEXT_ENCODERS.build(text_encoder)
        projection = dict(projection or {})
        self.image_proj = MODELS.build(dict(type='ProjectionHead', in_channels=pooled,
                                            out_channels=embed_dim, **projection))
        self.text_proj = MODELS.build(dict(type='ProjectionHead',
                                           in_channels=self.text_encoder.out_channels,
                                           out_channels=embed_dim, **projection))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.max_logit_scale = max_logit_scale
        if not losses:
            raise ConfigError('model.losses is empty; give at least one LOSSES config.')
        self.losses = nn.ModuleList(
            LOSSES.build(cfg, default_args=_vocab_arg(cfg, self.abnormality_vocab))
            for cfg in losses)
        self.prompts_file = prompts or self.abnormality_vocab.prompts_file or DEFAULT_PROMPTS
        self.prompts = load_prompts(self.prompts_file, self.abnormality_vocab)
        if nonfinite not in ('stop', 'skip'):
            raise ConfigError(f"model.nonfinite={nonfinite!r}; use 'stop' or 'skip'.")
        self.nonfinite = nonfinite
        self.skipped_batches = 0
        self.log_texts = log_texts

    # -- shared pieces -------------------------------------------------------------------------
    @property
    def temperature(self):
        return 1.0 / self.scale()

    def scale(self):
        """``1 / T``, clamped to ``max_logit_scale``."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def extract_feat(self, inputs):
        """``B x 1 x X x Y x Z`` -> the backbone's grounded feature map."""
        feats = self.backbone(inputs)
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def pool(self, feats, data_samples, pooler=None):
        """Organ (or global) embeddings ``B x K x C`` and validity ``B x K``.

        When every study carries the overlap of its label map with this feature grid
        (``organ_cells``, computed in the data loader's workers by
        ``PackCTInputs(organ_cells_stride=...)``), the pooler takes it instead of computing it
        in the step.
        """
        pooler = pooler or self.pooler
        labels = torch.stack([s.organ_label for s in data_samples]).to(feats.device)
        cells = None if self.is_global(pooler) else self._loader_cells(feats, data_samples)
        if cells is None:
            return pooler(feats, labels)
        return pooler(feats, labels, cells=cells)

    def _loader_cells(self, feats, data_samples):
        """The batch's ``OrganCells`` from the studies' precomputed overlaps, or None when a
        study has none or one for another grid (a one-time warning names the stride to set)."""
        from ctglip.models.poolers.base import OrganCells
        parts = [s.get('organ_cells') for s in data_samples]
        if not parts or any(p is None for p in parts):
            return None
        grid = tuple(feats.shape[2:])
        if any(tuple(p['grid']) != grid for p in parts):
            if not getattr(self, '_warned_cells_grid', False):
                from mmengine.logging import print_log
                size, theirs = tuple(data_samples[0].organ_label.shape), tuple(parts[0]['grid'])
                print_log(f'PackCTInputs.organ_cells_stride gives the grid {theirs} '
                          f'but the backbone pools on {grid} (label maps {size}); the step '
                          'computes the overlap itself. Fix: organ_cells_stride='
                          f'{tuple(s // g for s, g in zip(size, grid))} in the pipeline.',
                          logger='current', level=30)
                self._warned_cells_grid = True
            return None
        return OrganCells.from_samples(parts, len(self.organ_vocab), feats.device)

    def embed_organs(self, inputs, data_samples, pooler=None):
        """Pooled organ (or global) features before the projection, ``B x K x C'``, and
        validity ``B x K``: the backbone's map pooled by ``pooler`` (default: the training
        pooler), with the intensity skip's statistics appended when the model has one."""
        pooler = pooler or self.pooler
        embeds, valid = self.pool(self.extract_feat(inputs), data_samples, pooler)
        if self.intensity_skip is None:
            return embeds, valid
        labels = torch.stack([s.organ_label for s in data_samples]).to(inputs.device)
        if self.is_global(pooler):  # the whole study's labelled voxels as one region
            stats = self.intensity_skip(inputs, (labels > 0).long(), 1, context_label=labels)
        else:
            stats = self.intensity_skip(inputs, labels, embeds.shape[1])
        return torch.cat([embeds, stats.to(embeds.dtype)], dim=-1), valid

    def encode_text(self, texts):
        """N texts -> ``N x D`` L2-normalised embeddings."""
        return F.normalize(self.text_proj(self.text_encoder(list(texts)).float()), dim=-1)

    def is_global(self, pooler=None):
        return getattr(pooler or self.pooler, 'is_global', False)

    # -- training ------------------------------------------------------------------------------
    def train_step(self, data, optim_wrapper):
        """mmengine's train step with a guard against NaN or infinite losses and gradients."""
        from ctglip.engine.train_step import guarded_train_step
        return guarded_train_step(self, self, data, optim_wrapper)

    def handle_non_finite(self, what, optim_wrapper, log_vars):
        """Stop (raise) or skip and count a batch with a non-finite loss or gradient."""
        from mmengine.logging import MessageHub, print_log

        from ctglip.utils.errors import NonFiniteLossError
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter', 0) + 1
        if self.nonfinite == 'stop':
            last = hub.get_info('last_ckpt') or 'none saved yet'
            raise NonFiniteLossError(
                f'non-finite {what} at iteration {iteration}; last good checkpoint: {last}. '
                "Fix: lower the learning rate or check the data; model.nonfinite='skip' drops "
                'such batches instead.')
        optim_wrapper.zero_grad()
        self.skipped_batches += 1
        print_log(f'skipped batch at iteration {iteration}: non-finite {what} '
                  f'({self.skipped_batches} skipped so far)', logger='current', level=30)
        log_vars = {k: v for k, v in log_vars.items() if k != 'loss'}
        log_vars['skipped_batches'] = float(self.skipped_batches)
        return log_vars

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise ValueError(f"mode={mode!r}; use 'loss', 'predict' or 'tensor'.")

    def loss(self, inputs, data_samples):
        """Pool, project, gather across ranks and sum the contrastive terms.

        Returns:
            dict: ``loss_<term>`` (summed into the training loss), ``acc_<term>``,
            ``temperature`` and ``num_rows``.
        """
        embeds, valid = self.embed_organs(inputs, data_samples)
        global_pool = self.is_global()
        rows = [(b, None if global_pool else self.organ_vocab[k])
                for b, k in torch.nonzero(valid).tolist()]
        image_embeds = F.normalize(self.image_proj(embeds[valid]).float(), dim=-1)
        studies = [_study(s) for s in data_samples]
        if self.log_texts:  # debugging only; off by default (patient data)
            from mmengine.logging import print_log
            print_log(f'texts of this batch: {studies}', logger='current')
            self.log_texts = False
        # Gather rows of all ranks; study indices are offset by the studies before them.
        offset = gather_objects([len(studies)])
        base = sum(offset[:_rank()]) if len(offset) > 1 else 0
        rows = gather_objects([(b + base, organ) for b, organ in rows])
        studies = gather_objects(studies)
        image_embeds = gather_features(image_embeds)
        scale = self.scale()
        out = {}
        for loss in self.losses:
            targets = loss.build_targets(rows, studies)
            out.update(loss(image_embeds, self.encode_text(targets.texts), targets, scale))
        out['temperature'] = (1.0 / scale).detach()
        out['num_rows'] = torch.tensor(float(len(rows)))
        return out

    # -- zero-shot prediction ------------------------------------------------------------------
    def predict(self, inputs, data_samples):
        """Organ embeddings and zero-shot scores for each study.

        Sets on each data sample: ``organ_embeds`` (K x D), ``organ_valid`` (K), ``organ_logits``
        (K x K, scaled similarity of organ row k to organ class prompt j), ``abn_scores``
        ({organ: {abnormality: P(positive)}}).
        """
        pooler = self.test_pooler or self.pooler
        if self.is_global(pooler):
            raise ConfigError('predict needs organ embeddings: set model.test_pooler='
                              "dict(type='OrganMaskPooler') for a global-pooled model.")
        embeds, valid = self.embed_organs(inputs, data_samples, pooler)
        organ_embeds = F.normalize(self.image_proj(embeds).float(), dim=-1)  # B x K x D
        scale = self.scale()
        class_embeds = self._organ_class_embeds()  # K x D
        organ_logits = scale * organ_embeds @ class_embeds.t()
        abn = self._abnormality_prompt_embeds()
        for b, sample in enumerate(data_samples):
            sample.organ_embeds = organ_embeds[b].detach().cpu()
            sample.organ_valid = valid[b].detach().cpu()
            sample.organ_logits = organ_logits[b].detach().cpu()
            scores = {}
            for k in torch.nonzero(valid[b]).flatten().tolist():
                organ = self.organ_vocab[k]
                if organ not in abn:
                    continue
                pos_neg = abn[organ]  # A x 2 x D
                logits = scale * torch.einsum('d,and->an', organ_embeds[b, k], pos_neg)
                probs = logits.softmax(-1)[:, 0].tolist()
                scores[organ] = dict(zip(abn[f'{organ}:names'], probs))
            sample.abn_scores = scores
        return data_samples

    def _organ_class_embeds(self):
        """Prompt-ensemble embedding of each organ class: mean of normalised templates."""
        templates = self.prompts['organ_templates']
        texts = [t.format(organ=readable_name(o)) for o in self.organ_vocab for t in templates]
        embeds = self.encode_text(texts).view(len(self.organ_vocab), len(templates), -1)
        return F.normalize(embeds.mean(1), dim=-1)

    def _abnormality_prompt_embeds(self):
        """{organ: A x 2 x D (positive, negative ensembles)} and {organ:names: [abnormality]}.

        An organ is scored for every abnormality of every group of the vocabulary it belongs
        to, with the prompts the file holds for that group.
        """
        vocab = self.abnormality_vocab
        out = {}
        for organ in vocab.organs:
            if organ not in self.organ_vocab:
                continue
            name = readable_name(organ)
            names, pairs = [], []
            for group in vocab.groups_of(organ):
                entries = self.prompts['abnormalities'].get(group, {})
                for abnormality in vocab.abnormalities[group]:
                    pos, neg = (self.encode_text(texts) for texts in abnormality_prompt_texts(
                        self.prompts, entries[abnormality], name))
                    pairs.append(torch.stack([F.normalize(pos.mean(0), dim=-1),
                                              F.normalize(neg.mean(0), dim=-1)]))
                    names.append(abnormality)
            out[organ] = torch.stack(pairs)
            out[f'{organ}:names'] = names
        return out


def _rank():
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _study(sample):
    """The texts of a study that the losses need, as plain data (gathered across ranks)."""
    return dict(case_id=sample.get('case_id'), report=sample.get('report') or '',
                findings=sample.get('findings') or {}, status=sample.get('status') or {},
                abnormalities=sample.get('abnormalities'))


def abnormality_prompt_texts(prompts, entry, organ_name):
    """The (positive, negative) prompt texts of one abnormality entry of a prompt file, filled
    with ``organ_name``; the negatives include the file's ``normal_templates``."""
    negatives = entry.get('negative', []) + prompts.get('normal_templates', [])
    return ([t.format(organ=organ_name) for t in entry['positive']],
            [t.format(organ=organ_name) for t in negatives])


def _vocab_arg(cfg, vocab):
    """``dict(abnormality_vocab=vocab)`` for a LOSSES config whose class takes one, else {}."""
    from ctglip.vocabularies.config import takes_abnormality_vocab
    cls = cfg.get('type') if isinstance(cfg, dict) else None
    if isinstance(cls, str):
        cls = LOSSES.get(cls)
    return dict(abnormality_vocab=vocab) if takes_abnormality_vocab(cls) else {}


def load_prompts(path, abnormality_vocab=None):
    """Read a zero-shot prompt file (format fixed in DESIGN.md) and check its keys.

    Args:
        path (str): the JSON file.
        abnormality_vocab: the vocabulary the file must cover, every group and abnormality
            and nothing else (a miss is a one-line ConfigError that names what is missing).
            None: the groups of the default vocabulary, without requiring all of them. The
            model always passes its vocabulary.
    """
    vocab = load_abnormality_vocab(abnormality_vocab)
    if not osp.isfile(path):
        raise ConfigError(f'prompt file {path} does not exist. Fix: --prompts FILE (format in '
                          'README, "Zero-shot prompts").')
    try:
        with open(path) as f:
            prompts = json.load(f)
    except ValueError as e:
        raise ConfigError(f'prompt file {path} is not valid JSON: {e}') from None
    for key in ('organ_templates', 'abnormalities'):
        if key not in prompts:
            raise ConfigError(f'prompt file {path} has no {key!r} field (format in README).')
    vocab.check_covers(prompts['abnormalities'], 'prompt file', path,
                       complete=abnormality_vocab is not None)
    for group, entries in prompts['abnormalities'].items():
        for name, p in entries.items():
            if not p.get('positive') or not (p.get('negative') or prompts.get('normal_templates')):
                raise ConfigError(f'prompt file {path}: abnormalities.{group}.{name} needs '
                                  '"positive" and "negative" prompt lists.')
    return prompts
