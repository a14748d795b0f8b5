"""Run a trained CT-GLIP model on scans: organ recognition, abnormality read-outs, free-text
queries, organ and text embeddings.

The model file's own test pipeline does the preprocessing (reorientation to RAS, resampling,
HU window); only the view changes by default. The test pipeline of training crops a fixed box
(``CenterPadCrop``), which can cut organs of a whole scan; the inferencer's default view
(``view='whole'``) replaces that crop with the box of all organs of the mask plus a margin
(``OrganBoxCrop``), so every organ is pooled whole. The backbones are fully convolutional or
windowless transformers and the organ pooler averages over each organ, so a larger view needs
no other change. ``view='pipeline'`` keeps the test pipeline unchanged (as ``tools/test.py``
saw its data; organs outside the crop are then reported as not in view).
"""
import copy
import os
import os.path as osp
import sys

import numpy as np

from ctglip.apis import checks
from ctglip.apis.inference_meta import VIEW_TRANSFORMS, WHOLE_VIEW, threshold_for
from ctglip.apis.inputs import make_organ_mask, mask_command_hint, resolve_cases, \
    totalsegmentator_command
from ctglip.apis.model_files import load_model, set_prompts
from ctglip.datasets.organs import ORGAN_GROUPS, organ_group, readable_name
from ctglip.utils.errors import ConfigError, CTGLIPError, DataError

VIEWS = ('whole', 'pipeline')
DEFAULT_THRESHOLD = 0.5  # P(positive prompt) = P(negative prompt): used without a calibrated one


def _stderr(message):
    print(message, file=sys.stderr)


class CTGLIPInferencer:
    """CT-GLIP on your own scans.

    Args:
        model (str): a training checkpoint (``.pth``; unpickled: trusted files only) or an
            export of ``tools/export.py`` (``.safetensors`` with its ``.json``, or the folder;
            safe to load from anyone).
        device (str, optional): ``cpu``, ``cuda``, ``cuda:1``; default CUDA when available.
        prompts (str, optional): a zero-shot prompt file replacing the model's (format in
            DESIGN.md). Stored thresholds then apply only to abnormalities whose prompts are
            unchanged; the others are called at 0.5 and marked uncalibrated.
        thresholds (str, optional): a thresholds JSON (``tools/test.py`` writes one) replacing
            the stored thresholds.
        view (str): ``whole`` (every organ of the mask in view) or ``pipeline`` (the test
            pipeline's crop); see the module docstring.
        skip_checks (Sequence[str]): input checks to skip: ``hu``, ``laterality``.
        log (callable, optional): receives notes and warnings (default: stderr).

    Example:
        >>> inferencer = CTGLIPInferencer('model.safetensors')
        >>> results = inferencer('ct.nii.gz', masks='ct_organs.nii.gz',
        ...                      queries=['a stone in the gallbladder'], out_dir='out')
        >>> results[0]['organs']['liver']['abnormalities']['liver cyst']['probability']
        >>> text = inferencer.encode_text(['A cyst in the liver.'])          # N x D
        >>> organs = inferencer.encode_organs('ct.nii.gz', 'ct_organs.nii.gz')
    """

    def __init__(self, model, device=None, prompts=None, thresholds=None, view='whole',
                 skip_checks=(), log=None):
        import torch
        if view not in VIEWS:
            raise ConfigError(f'view={view!r}; use one of {VIEWS}.')
        unknown = sorted(set(skip_checks) - set(checks.SKIPPABLE))
        if unknown:
            raise ConfigError(f'skip_checks {unknown}: only {list(checks.SKIPPABLE)} can be '
                              'skipped.')
        self.device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        if str(self.device).startswith('cuda') and not torch.cuda.is_available():
            raise ConfigError(f'device {self.device!r}: this machine has no CUDA device (or '
                              'torch was built without CUDA). Fix: --device cpu.')
        self.log = log or _stderr
        self.model, self.meta = load_model(model, self.device, thresholds)
        self.stored_prompts = self.meta['prompts']
        if prompts:
            from ctglip.models.ctglip import load_prompts
            vocab = self.abnormality_vocab
            loaded = (load_prompts(os.fspath(prompts)) if vocab is None
                      else load_prompts(os.fspath(prompts), vocab))
            set_prompts(self.model, loaded, os.fspath(prompts))
        self.prompts_source = os.fspath(prompts) if prompts else 'stored in the model file'
        self.view = view
        self.skip_checks = tuple(skip_checks)
        self.transforms, self.pipeline_cfg = self._build_pipeline(view)
        self.vocab = tuple(self.model.organ_vocab)
        self.train_spacing = self.meta['preprocessing'].get('spacing_mm')
        self._text_cache = {}
        self.warm_text_cache()

    # -- setup -----------------------------------------------------------------------------------
    def _build_pipeline(self, view):
        from ctglip.registry import TRANSFORMS
        cfgs = copy.deepcopy(self.meta['preprocessing']['test_pipeline'])
        if not cfgs or cfgs[0].get('type') != 'LoadCTStudy':
            raise ConfigError('the model file\'s test pipeline does not start with LoadCTStudy; '
                              'the inferencer reads scans with it. Fix: export a checkpoint of a '
                              'config whose test pipeline loads studies with LoadCTStudy.')
        cfgs[0]['organ_vocab'] = list(self.model.organ_vocab)
        if view == 'whole':
            whole = self.meta['preprocessing'].get('inference_view') or WHOLE_VIEW
            cfgs = [dict(whole) if c.get('type') in VIEW_TRANSFORMS else c for c in cfgs]
        return [TRANSFORMS.build(c) for c in cfgs], cfgs

    @property
    def abnormality_vocab(self):
        """The model's abnormality vocabulary (None for models that predate vocabularies:
        the default groups apply)."""
        return getattr(self.model, 'abnormality_vocab', None)

    @property
    def readout_organs(self):
        """Organs of the model's organ vocabulary that have abnormality read-outs."""
        vocab = self.abnormality_vocab
        organs = vocab.organs if vocab is not None else [
            o for g, members in ORGAN_GROUPS.items()
            if self.model.prompts['abnormalities'].get(g) for o in members]
        return [o for o in organs if o in self.vocab]

    def organ_group(self, organ):
        """The (first) abnormality group of an organ, or None."""
        vocab = self.abnormality_vocab
        return vocab.organ_group(organ) if vocab is not None else organ_group(organ)

    def unit_group(self, organ, abnormality):
        """The group an (organ, abnormality) read-out counts under (metric and threshold
        keys are ``group/abnormality``)."""
        vocab = self.abnormality_vocab
        return vocab.unit_group(organ, abnormality) if vocab is not None else organ_group(organ)

    # -- text ------------------------------------------------------------------------------------
    def prompt_texts(self):
        """Every prompt sentence a prediction encodes: the organ and normal templates for
        the whole vocabulary (free-text queries are scored against the normal ones), and the
        positive and negative sentences of each organ with a read-out."""
        from ctglip.models.ctglip import abnormality_prompt_texts
        prompts = self.model.prompts
        templates = prompts['organ_templates'] + prompts.get('normal_templates', [])
        texts = [t.format(organ=readable_name(o)) for o in self.vocab for t in templates]
        vocab = self.abnormality_vocab
        for organ in self.readout_organs:
            name = readable_name(organ)
            groups = vocab.groups_of(organ) if vocab is not None else [organ_group(organ)]
            for group in groups:
                for entry in prompts['abnormalities'].get(group, {}).values():
                    for part in abnormality_prompt_texts(prompts, entry, name):
                        texts.extend(part)
        return list(dict.fromkeys(texts))

    def warm_text_cache(self):
        """Encode every prompt sentence in a few large batches up front. A frozen text
        encoder caches sentence features, so predictions then only look them up (sentence by
        sentence, the first prediction takes minutes on a CPU)."""
        import torch
        encoder = self.model.text_encoder
        if not getattr(encoder, 'frozen', False):
            return
        texts = self.prompt_texts()
        with torch.no_grad():
            for i in range(0, len(texts), 512):
                encoder(texts[i:i + 512])

    def encode_text(self, texts, batch_size=256):
        """Embed texts (reports, findings, queries) in the joint space.

        Args:
            texts (Sequence[str]): N texts.
            batch_size (int): texts per forward pass.

        Returns:
            torch.Tensor: N x D, L2-normalised, on the CPU.
        """
        import torch
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return torch.zeros(0, self.meta['model'].get('embed_dim', 256))
        with torch.no_grad():
            return torch.cat([self.model.encode_text(texts[i:i + batch_size]).cpu()
                              for i in range(0, len(texts), batch_size)])

    def _text_embed(self, texts):
        """Normalised mean embedding of a prompt ensemble (cached)."""
        import torch.nn.functional as F
        key = tuple(texts)
        if key not in self._text_cache:
            self._text_cache[key] = F.normalize(self.encode_text(texts).mean(0), dim=-1)
        return self._text_cache[key]

    # -- cases -----------------------------------------------------------------------------------
    def prepare(self, case, mask_dir=None):
        """Check and preprocess one case.

        Returns:
            tuple: ``(packed, context, warnings)``: the packed pipeline output
            (``inputs``, ``data_samples``), what pictures and overlays need (the CT in HU and
            the organ labels in RAS at input resolution, the spacing, the mask and its
            scheme), and the warnings of the input checks.

        Raises:
            DataError: the case fails a check (naming the file and the fix).
        """
        if case.error:
            raise DataError(case.error)
        warnings = list(case.notes)
        mask, scheme = case.mask, case.label_scheme
        if mask is None:
            target = osp.join(mask_dir or osp.join(os.getcwd(), 'ctglip_masks'),
                              f'{case.folder_name}_organs.nii.gz')
            mask, scheme = make_organ_mask(case, target, self.log)
            warnings.append(f'case {case.case_id!r}: organ mask made by TotalSegmentator: {mask}')
        from ctglip.datasets.transforms.loading import check_study_headers
        check_study_headers(case.image, mask, None, case.case_id)
        if osp.isdir(case.image):
            checks.check_dicom_modality(case.image, case.case_id)
        scheme, found = checks.resolve_label_scheme(mask, scheme, case.case_id,
                                                    self.skip_checks)
        warnings += found
        results = dict(case_id=case.case_id, img_path=case.image, mask_path=mask,
                       label_scheme=scheme)
        results = self.transforms[0](results)
        image, label = results['image'][0], results['organ_label'][0]
        affine = np.asarray(image.affine, dtype=float)
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        image_np = np.asarray(image.as_tensor() if hasattr(image, 'as_tensor') else image)
        label_np = np.asarray(label.as_tensor() if hasattr(label, 'as_tensor') else label)
        if 'hu' not in self.skip_checks:
            warnings += checks.check_hounsfield(image_np, label_np, self.vocab, case.image,
                                                case.case_id)
        warnings += checks.check_spacing(spacing, self.train_spacing, case.image, case.case_id)
        warnings += checks.check_organ_count(label_np, self.vocab, self.readout_organs, mask,
                                             case.case_id)
        if osp.isdir(mask) and 'laterality' not in self.skip_checks:
            names = {i + 1: name for i, name in enumerate(self.vocab)}
            warnings += checks.check_laterality(label_np, affine, names, mask, case.case_id)
        context = dict(image=image_np, label=label_np.astype(np.int16), spacing=spacing.tolist(),
                       affine=affine, mask=mask, label_scheme=scheme)
        for transform in self.transforms[1:]:
            results = transform(results)
            if results is None:
                raise DataError(f'case {case.case_id!r}: the pipeline step {transform!r} dropped '
                                'the study.')
        view_shape = list(results['inputs'].shape[1:])
        context['view_shape'] = view_shape
        return results, context, warnings

    def _forward(self, packed):
        import torch
        data = dict(inputs=[p['inputs'] for p in packed],
                    data_samples=[p['data_samples'] for p in packed])
        with torch.no_grad():
            data = self.model.data_preprocessor(data, False)
            return self.model.predict(data['inputs'], data['data_samples'])

    def _cases(self, inputs, masks, label_scheme, split):
        from ctglip.apis.inputs import Case
        if isinstance(inputs, Case):
            return [inputs]
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(c, Case)
                                                                for c in inputs):
            return list(inputs)
        return resolve_cases(inputs, masks, label_scheme, split)

    def check_masks_available(self, cases):
        """One error for a run in which no case has a mask and TotalSegmentator is missing."""
        missing = [c for c in cases if c.mask is None and c.error is None and c.image]
        if missing and len(missing) == len(cases) and totalsegmentator_command() is None:
            first = missing[0]
            hint = mask_command_hint(first.image, f'{first.folder_name}_organs.nii.gz')
            more = f' (and likewise for the other {len(missing) - 1} cases)' if len(missing) > 1 \
                else ''
            raise DataError('no organ mask given and TotalSegmentator is not installed. Make the '
                            f'mask with: {hint}{more}.')

    # -- predictions -----------------------------------------------------------------------------
    def __call__(self, inputs, masks=None, queries=(), out_dir=None, label_scheme='auto',
                 split=None, skip_errors=False, pictures=True, overlays=True, progress=False):
        """Read out every case of ``inputs``.

        Args:
            inputs: a NIfTI file, a DICOM series folder, a folder of cases or a manifest (see
                ``ctglip.apis.inputs``), or a list of them.
            masks: the organ mask(s) (TotalSegmentator output); None to make them with
                TotalSegmentator when it is installed.
            queries (Sequence[str]): free-text findings scored against every organ.
            out_dir (str, optional): write ``<out_dir>/<case>/predictions.json``, overlays
                and pictures, and ``<out_dir>/predictions.csv`` and ``run.json``.
            label_scheme (str): the masks' scheme (``auto`` detects it).
            split (str, optional): with a manifest, its lines of this split only.
            skip_errors (bool): report a failing case (an entry with ``error``) and go on,
                instead of raising.
            pictures, overlays (bool): write the PNG pictures and NIfTI overlays.
            progress (bool): show a progress bar over the cases.

        Returns:
            list[dict]: one result per case (the content of its ``predictions.json``; a failed
            case has ``case_id`` and ``error`` only).
        """
        from ctglip.apis import outputs
        queries = [q.strip() for q in queries if q and q.strip()]
        cases = self._cases(inputs, masks, label_scheme, split)
        self.check_masks_available(cases)
        results, rows = [], []
        bar, log = self._progress(cases, progress)
        for case in bar:
            case_dir = osp.join(out_dir, case.folder_name) if out_dir else None
            try:
                packed, context, warnings = self.prepare(case, mask_dir=case_dir)
                for message in warnings:
                    log(f'warning: {message}')
                sample = self._forward([packed])[0]
                result = self.read_out(case, sample, context, warnings, queries)
                if out_dir:
                    self.write_case(result, context, case_dir, pictures, overlays)
            except Exception as e:  # noqa: BLE001  one bad case must not stop the others
                if not skip_errors:
                    raise
                message = ' '.join(str(e).split()) or type(e).__name__
                if not isinstance(e, CTGLIPError):
                    message = f'unexpected {type(e).__name__}: {message}'
                if not message.startswith(f'case {case.case_id!r}'):
                    message = f'case {case.case_id!r}: {message}'
                log(f'error: {message}')
                results.append(dict(case_id=case.case_id, error=message))
                continue
            results.append(result)
            rows.extend(outputs.csv_rows(result))
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            outputs.write_csv(rows, osp.join(out_dir, 'predictions.csv'))
            self._write_run(results, queries, out_dir)
        return results

    def _progress(self, cases, progress):
        if not progress:
            return cases, self.log
        from tqdm import tqdm
        bar = tqdm(cases, desc='cases', unit='case', file=sys.stderr, dynamic_ncols=True)
        return bar, lambda message: tqdm.write(message, file=sys.stderr)

    def read_out(self, case, sample, context, warnings, queries=()):
        """A case's result (the ``predictions.json`` content) from a predicted data sample."""
        import torch
        vocab = self.vocab
        valid = sample.organ_valid.bool()
        probs = sample.organ_logits.float().softmax(-1)
        view_counts = torch.bincount(sample.organ_label.flatten().long().cpu(),
                                     minlength=len(vocab) + 1)
        full_counts = np.bincount(context['label'].ravel().astype(np.int64),
                                  minlength=len(vocab) + 1)
        scale = float(self.model.scale().detach())
        query_embeds = {q: self._text_embed([q]) for q in queries}
        thresholds = self.meta.get('thresholds')
        organs, hits = {}, 0
        for k in torch.nonzero(valid).flatten().tolist():
            organ = vocab[k]
            top = probs[k].topk(min(5, len(vocab)))
            top5 = [dict(organ=vocab[j], probability=_r(p))
                    for p, j in zip(top.values.tolist(), top.indices.tolist())]
            hits += top5[0]['organ'] == organ
            entry = dict(voxels_in_view=int(view_counts[k + 1]), group=self.organ_group(organ),
                         recognition=dict(top5=top5, correct=top5[0]['organ'] == organ))
            scores = (sample.abn_scores or {}).get(organ)
            if scores:
                entry['abnormalities'] = {
                    name: self._call(self.unit_group(organ, name), name, p, thresholds)
                    for name, p in scores.items()}
            if queries:
                entry['queries'] = {q: self._query(sample.organ_embeds[k], organ, e, scale)
                                    for q, e in query_embeds.items()}
            organs[organ] = entry
        not_scored = {vocab[i - 1]: self._why_not_scored(int(full_counts[i]), int(view_counts[i]))
                      for i in np.nonzero(full_counts)[0] if i > 0 and vocab[i - 1] not in organs}
        result = dict(
            case_id=case.case_id, image=osp.abspath(case.image),
            organ_mask=osp.abspath(context['mask']), label_scheme=context['label_scheme'],
            model=self.model_info(),
            view=dict(mode=self.view, shape=context['view_shape'],
                      spacing_mm=self.train_spacing, input_spacing_mm=_round(context['spacing'])),
            warnings=list(warnings),
            organ_recognition_top1=_r(hits / len(organs)) if organs else None,
            organs=organs, organs_not_scored=not_scored)
        if queries:
            result['queries'] = {q: sorted(
                ({'organ': o, **e['queries'][q]} for o, e in organs.items()),
                key=lambda r: -r['similarity'])[:5] for q in queries}
        return result

    def _why_not_scored(self, voxels_in_mask, voxels_in_view):
        if voxels_in_view == 0 and self.view == 'pipeline' and voxels_in_mask >= 100:
            return 'outside the test pipeline\'s crop (view="whole" sees every organ)'
        return (f'too small: {voxels_in_mask} voxel(s) in the mask, {voxels_in_view} after '
                'resampling to the model\'s spacing')

    def _call(self, group, abnormality, probability, thresholds):
        stored = threshold_for(thresholds, group, abnormality)
        calibrated = stored is not None and self._prompts_unchanged(group, abnormality)
        threshold = stored if calibrated else DEFAULT_THRESHOLD
        return dict(probability=_r(probability), threshold=_r(threshold), calibrated=calibrated,
                    call=bool(probability >= threshold))

    def _prompts_unchanged(self, group, abnormality):
        now, stored = self.model.prompts, self.stored_prompts
        if now is stored:
            return True
        return (now.get('normal_templates') == stored.get('normal_templates')
                and now['abnormalities'].get(group, {}).get(abnormality)
                == stored['abnormalities'].get(group, {}).get(abnormality))

    def _query(self, organ_embed, organ, query_embed, scale):
        """Cosine similarity of an organ to a query, and the probability of the query against
        the prompts' "no abnormality" sentences for that organ."""
        import torch
        organ_embed = organ_embed.float().cpu()
        similarity = float(organ_embed @ query_embed)
        normal = [t.format(organ=readable_name(organ))
                  for t in self.model.prompts.get('normal_templates', [])]
        if not normal:
            return dict(similarity=_r(similarity), probability=None)
        negative = float(organ_embed @ self._text_embed(normal))
        prob = torch.tensor([similarity, negative]).mul(scale).softmax(0)[0]
        return dict(similarity=_r(similarity), probability=_r(float(prob)))

    def model_info(self):
        """What predictions.json says about the model."""
        source = self.meta.get('source', {})
        return dict(file=source.get('path'), kind=source.get('kind'),
                    iteration=source.get('iteration'),
                    ctglip_version=self.meta.get('ctglip_version'),
                    temperature=_r(float(self.model.temperature.detach())),
                    prompts=self.prompts_source,
                    thresholds_source=self.meta.get('thresholds_source')
                    or f'none stored: abnormalities are called at {DEFAULT_THRESHOLD}')

    # -- files -----------------------------------------------------------------------------------
    def write_case(self, result, context, case_dir, pictures=True, overlays=True):
        """Write a case's predictions.json, overlays and pictures into ``case_dir``."""
        from ctglip.apis import outputs, pictures as pics
        os.makedirs(case_dir, exist_ok=True)
        files = {}
        if overlays:
            files.update(outputs.write_overlays(result, context['mask'], context['label_scheme'],
                                                self.vocab, case_dir))
        if pictures:
            index = {name: i + 1 for i, name in enumerate(self.vocab)}
            organ_probs = {index[o]: (o, max((a['probability'] for a in
                                              e.get('abnormalities', {}).values()), default=None))
                           for o, e in result['organs'].items()}
            title = f'{result["case_id"]}: zero-shot abnormality read-out'
            pics.draw_slices(context['image'], context['label'], context['spacing'], organ_probs,
                             title, osp.join(case_dir, 'slices.png'), context.get('affine'))
            rows = [(f'{readable_name(o)}: {name}', a['probability'], a['threshold'], a['call'],
                     a['calibrated'])
                    for o, e in result['organs'].items()
                    for name, a in e.get('abnormalities', {}).items()]
            pics.draw_abnormality_bars(rows, title, osp.join(case_dir, 'abnormalities.png'))
            files.update(slices='slices.png', abnormalities='abnormalities.png')
            if result.get('queries'):
                ranking = {q: [(o, e['queries'][q]['probability'] or 0.0,
                                e['queries'][q]['similarity'])
                               for o, e in sorted(result['organs'].items(), key=lambda item:
                                                  -(item[1]['queries'][q]['probability'] or 0))]
                           for q in result['queries']}
                pics.draw_query_bars(ranking, f'{result["case_id"]}: free-text queries',
                                     osp.join(case_dir, 'queries.png'))
                files['queries'] = 'queries.png'
        result['files'] = files
        outputs.write_predictions(result, case_dir)

    def _write_run(self, results, queries, out_dir):
        from ctglip.apis.model_files import write_json
        failed = [r for r in results if 'error' in r]
        write_json(dict(model=self.model_info(), view=self.view, queries=list(queries),
                        preprocessing={k: v for k, v in self.meta['preprocessing'].items()
                                       if k != 'test_pipeline'},
                        pipeline=self.pipeline_cfg,
                        cases=len(results), done=len(results) - len(failed),
                        failed={r['case_id']: r['error'] for r in failed},
                        warnings={r['case_id']: r['warnings'] for r in results
                                  if r.get('warnings')}),
                   osp.join(out_dir, 'run.json'))

    # -- embeddings ------------------------------------------------------------------------------
    def encode_organs(self, inputs, masks=None, label_scheme='auto', space='joint',
                      batch_size=1, split=None):
        """Embed the organs of each case, for retrieval and probing.

        Args:
            inputs, masks, label_scheme, split: as for ``__call__``.
            space (str): ``joint``: L2-normalised embeddings in the space of ``encode_text``
                (``K' x D``); ``pooled``: the pooled features before the projection
                (``K' x C'``, with the intensity statistics when the model has them).
            batch_size (int): cases per forward pass (views are padded to the largest).

        Returns:
            list[dict]: per case ``case_id``, ``organs`` (the K' organs in view) and
            ``embeds`` (a CPU tensor, one row per organ).
        """
        import torch
        if space not in ('joint', 'pooled'):
            raise ConfigError(f"space={space!r}; use 'joint' or 'pooled'.")
        cases = self._cases(inputs, masks, label_scheme, split)
        self.check_masks_available(cases)
        out = []
        for start in range(0, len(cases), batch_size):
            chunk = cases[start:start + batch_size]
            packed = [self.prepare(c)[0] for c in chunk]
            data = dict(inputs=[p['inputs'] for p in packed],
                        data_samples=[p['data_samples'] for p in packed])
            with torch.no_grad():
                data = self.model.data_preprocessor(data, False)
                if space == 'joint':
                    samples = self.model.predict(data['inputs'], data['data_samples'])
                    embeds = torch.stack([s.organ_embeds for s in samples])
                    valid = torch.stack([s.organ_valid for s in samples])
                else:
                    pooler = self.model.test_pooler or self.model.pooler
                    embeds, valid = self.model.embed_organs(data['inputs'], data['data_samples'],
                                                            pooler)
            for case, e, v in zip(chunk, embeds.cpu(), valid.cpu()):
                index = torch.nonzero(v).flatten()
                out.append(dict(case_id=case.case_id, organs=[self.vocab[i] for i in index],
                                embeds=e[index].float()))
        return out


def _r(value):
    return None if value is None else round(float(value), 6)


def _round(values):
    return [round(float(v), 4) for v in values]
