"""What a checkpoint must carry to run on a new scan: the one place that knows this schema.

Training checkpoints store it under ``meta['ctglip_inference']`` (``InferenceMetaHook``);
``tools/export.py`` writes the same dictionary into the JSON sidecar of a ``.safetensors``
file; ``CTGLIPInferencer`` reads it from either. Checkpoints written before the hook existed
get it rebuilt from the config text that mmengine stores in every checkpoint (``meta['cfg']``).

Schema (version 1), every value plain JSON:

======================  ==========================================================================
``schema``              1
``ctglip_version``      the ctglip that wrote it
``model``               the model config (``type='CTGLIP'``, backbone, pooler, text encoder, ...)
``organ_vocab``         the organ vocabulary (label ``i + 1`` is ``organ_vocab[i]``)
``abnormality_vocab``   the abnormality vocabulary's contents (organ groups and their
                        abnormalities), or None for models that predate vocabularies
``label_scheme``        the scheme the vocabulary comes from (``totalseg_v1``), or None
``preprocessing``       ``orientation``, ``spacing_mm``, ``hu_windows``, ``view`` (the test
                        pipeline's crop) and ``test_pipeline`` (the transforms, in order)
``prompts``             the zero-shot prompt set itself (format in DESIGN.md), not its path
``temperature``         the learned softmax temperature
``thresholds``          ``{group/abnormality: threshold}`` or None
``thresholds_source``   where the thresholds were chosen (validation split, which run), or None
``text_encoder``        ``model_path`` and ``probe``: the first features of ``probe_text``, to
                        tell at load time that the same (frozen) text encoder is in use
======================  ==========================================================================

Loading a model file from a stranger must not run code the file names: ``check_safe_types``
accepts only ``type`` names registered in ctglip's own registries (mmengine would otherwise
import any dotted path, ``type='os.system'`` included) and no ``_scope_`` switches.
"""
import copy
import os
import os.path as osp

from ctglip.utils.errors import ConfigError

META_KEY = 'ctglip_inference'
SCHEMA_VERSION = 1
REQUIRED_KEYS = ('schema', 'ctglip_version', 'model', 'organ_vocab', 'preprocessing', 'prompts',
                 'temperature', 'thresholds', 'text_encoder')
PROBE_TEXT = 'This is the liver.'
PROBE_DIMS = 8
# Transforms that choose the part of the scan the model sees (the "view").
VIEW_TRANSFORMS = ('CenterPadCrop', 'OrganBoxCrop', 'RandOrganCrop', 'ResizeWithPadOrCropd',
                   'RandSpatialCropd')
# The inference view: the test pipeline with its crop replaced by the box of all organs.
WHOLE_VIEW = dict(type='OrganBoxCrop', margin=2)


def build_inference_meta(cfg, model, thresholds=None, thresholds_source=None):
    """The inference metadata of a trained ``CTGLIP`` (see the module docstring).

    Args:
        cfg (mmengine.Config | dict): the run's config (``model`` and the test or val
            dataloader's pipeline are read).
        model (CTGLIP): the model (vocabulary, prompts, temperature, text encoder).
        thresholds (dict, optional): ``{group/abnormality: threshold}``.
        thresholds_source (str, optional): where they were chosen.

    Returns:
        dict: plain JSON data.
    """
    import torch

    from ctglip.version import __version__
    cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    model_cfg = to_plain(cfg['model'], 'model')
    pipeline = test_pipeline_of(cfg)
    encoder, training = model.text_encoder, model.text_encoder.training
    encoder.eval()  # no dropout in the probe of a trainable encoder
    try:
        with torch.no_grad():
            probe = encoder([PROBE_TEXT])[0, :PROBE_DIMS].float().cpu().tolist()
    finally:
        encoder.train(training)
    vocab_cfg = model_cfg.get('organ_vocab', 'totalseg_v1')
    abnormality_vocab = getattr(model, 'abnormality_vocab', None)
    if abnormality_vocab is not None:  # its contents: a name or path may not resolve elsewhere
        abnormality_vocab = to_plain(abnormality_vocab.to_dict(), 'abnormality_vocab')
        model_cfg['abnormality_vocab'] = abnormality_vocab
    return dict(
        schema=SCHEMA_VERSION,
        ctglip_version=__version__,
        model=model_cfg,
        organ_vocab=list(model.organ_vocab),
        abnormality_vocab=abnormality_vocab,
        label_scheme=vocab_cfg if isinstance(vocab_cfg, str) else None,
        preprocessing=describe_preprocessing(pipeline),
        prompts=to_plain(model.prompts, 'prompts'),
        temperature=float(model.temperature.detach()),
        thresholds=None if not thresholds else {str(k): float(v) for k, v in thresholds.items()},
        thresholds_source=thresholds_source if thresholds else None,
        text_encoder=dict(model_path=(model_cfg.get('text_encoder') or {}).get('model_path'),
                          probe_text=PROBE_TEXT, probe=[round(v, 6) for v in probe]),
    )


def test_pipeline_of(cfg):
    """The test (else validation) dataloader's pipeline, with ``CachedPreprocess`` unwrapped
    (inference reads each scan once; nothing is cached next to a user's files)."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and (loader.get('dataset') or {}).get('pipeline'):
            return flatten_pipeline(to_plain(loader['dataset']['pipeline'], f'{key}.pipeline'))
    raise ConfigError('the config has no test_dataloader or val_dataloader pipeline, so the '
                      'preprocessing of inference is unknown. Fix: give the config a '
                      'test_dataloader with the pipeline of evaluation.')


def flatten_pipeline(pipeline):
    """Transforms in order, the contents of ``CachedPreprocess`` in its place."""
    out = []
    for t in pipeline:
        if t.get('type') == 'CachedPreprocess':
            out.extend(flatten_pipeline(t['transforms']))
        else:
            out.append(t)
    return out


def describe_preprocessing(pipeline):
    """Human-readable preprocessing facts of a (flat) test pipeline, plus the pipeline."""
    info = dict(orientation='RAS', spacing_mm=None, hu_windows=[], view=None,
                test_pipeline=pipeline, inference_view=dict(WHOLE_VIEW))
    for t in pipeline:
        kind = t.get('type')
        if kind == 'Orientationd':
            info['orientation'] = t.get('axcodes', 'RAS')
        elif kind == 'Spacingd':
            pixdim = t.get('pixdim')
            pixdim = pixdim if isinstance(pixdim, list) else [pixdim] * 3
            info['spacing_mm'] = [float(p) for p in pixdim]
        elif kind == 'ScaleIntensityRanged' and 'image' in _keys(t):
            info['hu_windows'].append([float(t['a_min']), float(t['a_max'])])
        elif kind == 'MultiWindowd':
            info['hu_windows'] = [[float(lo), float(hi)] for lo, hi in t['windows']]
        elif kind in VIEW_TRANSFORMS:
            info['view'] = dict(t)
    return info


def _keys(t):
    keys = t.get('keys', [])
    return [keys] if isinstance(keys, str) else list(keys)


def to_plain(value, where):
    """Config values as plain JSON data (tuples become lists); ConfigError naming the key of
    anything else."""
    if isinstance(value, dict) or hasattr(value, 'items'):
        return {str(k): to_plain(v, f'{where}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f'{where} is a {type(value).__name__}, which a model file cannot store '
                      'as plain data. Fix: write it in the config as a dict, list, number or '
                      'string (e.g. a registered type name instead of a class).')


def check_inference_meta(meta, source):
    """Validate inference metadata read from ``source``; returns it.

    Raises:
        ConfigError: a field is missing, the schema is newer than this ctglip, or a ``type``
            is not one of ctglip's registered names.
    """
    if not isinstance(meta, dict):
        raise ConfigError(f'{source}: the inference metadata is not a JSON object. Fix: '
                          're-export the checkpoint with tools/export.py.')
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ConfigError(f'{source}: inference metadata lacks {missing}. Fix: re-export the '
                          'checkpoint with tools/export.py of this ctglip.')
    if not isinstance(meta['schema'], int) or meta['schema'] > SCHEMA_VERSION:
        raise ConfigError(f'{source}: inference metadata schema {meta["schema"]!r} was written '
                          f'by ctglip {meta.get("ctglip_version")}; this ctglip reads schema '
                          f'{SCHEMA_VERSION}. Fix: upgrade ctglip.')
    check_safe_types(meta['model'], f'{source}: model')
    pipeline = (meta['preprocessing'] or {}).get('test_pipeline')
    if not pipeline:
        raise ConfigError(f'{source}: inference metadata has no preprocessing.test_pipeline. '
                          'Fix: re-export the checkpoint with tools/export.py.')
    check_safe_types(pipeline, f'{source}: preprocessing.test_pipeline')
    check_safe_types(meta['preprocessing'].get('inference_view') or {},
                     f'{source}: preprocessing.inference_view')
    return meta


def check_safe_types(cfg, where):
    """Refuse any ``type`` that is not a plain name in ctglip's own registries.

    mmengine resolves a dotted ``type`` by importing it (``type='os.system'`` would run), and a
    ``_scope_`` key imports ``<scope>.registry``; a model file from a stranger gets neither.
    """
    if isinstance(cfg, dict):
        if '_scope_' in cfg:
            raise ConfigError(f'{where}: a "_scope_" key is not accepted in a model file.')
        kind = cfg.get('type')
        if kind is not None:
            if not isinstance(kind, str) or kind not in _ctglip_type_names():
                raise ConfigError(f'{where}: type={kind!r} is not a type registered by ctglip; a '
                                  'model file may name only those (nothing is imported from '
                                  'it). Fix: use a file written by tools/export.py, or import '
                                  'the project that registers the type before loading.')
        for key, value in cfg.items():
            check_safe_types(value, f'{where}.{key}')
    elif isinstance(cfg, list):
        for i, value in enumerate(cfg):
            check_safe_types(value, f'{where}[{i}]')


def _ctglip_type_names():
    """Names registered in ctglip's own registries (children and domain kinds), not in
    mmengine's roots."""
    from ctglip import registry
    names = set()
    for reg in (registry.MODELS, registry.TRANSFORMS, registry.BACKBONES, registry.POOLERS,
                registry.TEXT_ENCODERS, registry.LOSSES):
        reg.import_from_location()
        names.update(reg.module_dict)
    return names


# -- thresholds ------------------------------------------------------------------------------
def thresholds_from_metrics(metrics):
    """``{group/abnormality: threshold}`` from validation metrics
    (``<prefix>/abn_threshold/<group>/<abnormality>``); the first prefix when there are several."""
    found = {}
    for key, value in (metrics or {}).items():
        head, sep, tail = str(key).partition('abn_threshold/')
        if sep and (not head or head.endswith('/')):
            found.setdefault(head, {})[tail] = float(value)
    return next(iter(found.values()), {})


def thresholds_near_checkpoint(checkpoint_path):
    """Thresholds that ``tools/test.py`` wrote in the checkpoint's work dir after the
    checkpoint was saved: its validation calibration first, then thresholds chosen on the test
    split itself (``--no-val-calibration``).

    Returns:
        tuple: ``(thresholds, source)`` or ``(None, None)``.
    """
    from ctglip.evaluation.metrics.zeroshot_abnormality import THRESHOLDS_FILE, load_thresholds
    work_dir = osp.dirname(osp.abspath(checkpoint_path))
    saved = osp.getmtime(checkpoint_path)
    for folder, what in (('val_calibration', 'chosen on the validation split by tools/test.py'),
                         ('test_results', 'chosen on the test split itself by tools/test.py '
                          '--no-val-calibration (optimistic)')):
        path = osp.join(work_dir, folder, THRESHOLDS_FILE)
        if osp.isfile(path) and osp.getmtime(path) >= saved:
            return load_thresholds(path), f'{what} ({path})'
    return None, None


def resolve_thresholds(meta, checkpoint_path=None, explicit=None):
    """Apply the thresholds a model file should use, in this order: an explicit file, those
    that ``tools/test.py`` wrote next to the checkpoint after it was saved, those stored in the
    checkpoint (validation during training). Returns a new metadata dict."""
    from ctglip.evaluation.metrics.zeroshot_abnormality import load_thresholds
    meta = copy.deepcopy(meta)
    if explicit:
        meta['thresholds'] = load_thresholds(os.fspath(explicit))
        meta['thresholds_source'] = f'given file {explicit}'
    elif checkpoint_path is not None:
        found, source = thresholds_near_checkpoint(checkpoint_path)
        if found:
            meta['thresholds'], meta['thresholds_source'] = found, source
    return meta


def threshold_for(thresholds, group, abnormality):
    """The threshold of one abnormality (keys ``group/abnormality`` or ``abnormality``)."""
    if not thresholds:
        return None
    value = thresholds.get(f'{group}/{abnormality}', thresholds.get(abnormality))
    return None if value is None else float(value)
