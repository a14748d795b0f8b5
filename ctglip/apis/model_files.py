"""Model files: training checkpoints (``.pth``, pickled) and exports (``.safetensors`` weights
plus a JSON sidecar, never unpickled).

Which loads are safe for a file from a stranger:

- ``load_model('model.safetensors')`` / ``load_model('model.json')``: safe. JSON is parsed
  as data, the weights by safetensors (no pickle), every ``type`` must be a name registered
  by ctglip (nothing is imported from the file) and the weights' SHA-256 must match the
  sidecar's.
- ``load_model('iter_300.pth')``: unpickles the file (``torch.load(weights_only=False)``;
  mmengine checkpoints hold optimizer and logger objects) and runs its config text as Python.
  Only for files you made or trust; share models with ``tools/export.py``.
"""
import contextlib
import copy
import datetime
import hashlib
import json
import os
import os.path as osp

from ctglip.apis.inference_meta import (META_KEY, build_inference_meta, check_inference_meta,
                                        resolve_thresholds)
from ctglip.utils.errors import CheckpointError, ConfigError

EXPORT_FORMAT = 'ctglip-export'
EXPORT_FORMAT_VERSION = 1
WEIGHTS_NAME = 'model.safetensors'
SIDECAR_NAME = 'model.json'
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt')


def load_model(path, device='cpu', thresholds=None):
    """Build a ``CTGLIP`` from a checkpoint or an export and load its weights.

    Args:
        path: a training checkpoint (``.pth``: trusted files only), an exported
            ``.safetensors`` file (its sidecar ``<name>.json`` next to it) or the sidecar, or
            a folder holding ``model.safetensors`` and ``model.json``.
        device: where the model goes.
        thresholds: a thresholds JSON file that replaces the stored thresholds.

    Returns:
        tuple: ``(model, meta)``: the model in eval mode and its inference metadata (schema in
        ``ctglip.apis.inference_meta``) with ``meta['source']`` describing the file.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        raise CheckpointError(f'model file {path} does not exist. Fix: give a .pth checkpoint '
                              'written by tools/train.py or a .safetensors file written by '
                              'tools/export.py.')
    if path.endswith(CHECKPOINT_SUFFIXES):
        model, meta = model_from_checkpoint(path, thresholds)
    else:
        model, meta = model_from_export(path, thresholds)
    check_text_encoder(model, meta, path)
    return model.to(device).eval(), meta


# -- training checkpoints ----------------------------------------------------------------------
def read_checkpoint(path):
    """``torch.load`` a training checkpoint (unpickles: trusted files only)."""
    import torch
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # noqa: BLE001  any failure here means an unreadable file
        raise CheckpointError(f'cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}. '
                              'Fix: give a complete .pth file written by tools/train.py.') from None


def model_from_checkpoint(path, thresholds=None):
    """Model and metadata of a training checkpoint; metadata rebuilt from ``meta['cfg']`` for
    checkpoints written before ``InferenceMetaHook``."""
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise CheckpointError(f'{path} is not a ctglip training checkpoint (no state_dict). Fix: '
                              'give a .pth file written by tools/train.py.')
    ck_meta = checkpoint.get('meta') or {}
    state = _strip_module_prefix(checkpoint['state_dict'])
    if META_KEY in ck_meta:
        meta = check_inference_meta(ck_meta[META_KEY], path)
        model = build_model(meta, path)
        load_weights(model, state, path)
    else:
        model, meta = _model_from_config_text(ck_meta.get('cfg'), state, path)
    meta = resolve_thresholds(meta, path, thresholds)
    meta['config_text'] = ck_meta.get('cfg')
    meta['source'] = dict(kind='checkpoint', path=osp.abspath(path), iteration=ck_meta.get('iter'))
    return model, meta


def _model_from_config_text(cfg_text, state, path):
    from mmengine.config import Config
    if not cfg_text:
        raise CheckpointError(f'{path} carries neither inference metadata nor its config '
                              "(meta['cfg']). Fix: give a checkpoint written by tools/train.py.")
    try:
        cfg = Config.fromstring(cfg_text, '.py')
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: the config stored in meta['cfg'] does not parse: "
                              f'{str(e).splitlines()[0][:200]}') from None
    prompts = cfg.model.get('prompts')
    if prompts and not osp.isfile(prompts):
        raise ConfigError(f'{path} was trained with the prompt file {prompts}, which is not on '
                          'this machine (checkpoints written before InferenceMetaHook do not '
                          'carry their prompts). Fix: pass --prompts FILE.')
    _require_ctglip(cfg.model.get('type'), path)
    model = build_for_inference(cfg.model.to_dict())
    load_weights(model, state, path)
    meta = build_inference_meta(cfg, model)
    meta['note'] = ('rebuilt from the config stored in a checkpoint written before ctglip stored '
                    'inference metadata; no abnormality thresholds are stored in it')
    return model, meta


def _strip_module_prefix(state):
    if state and all(k.startswith('module.') for k in state):
        return {k[len('module.'):]: v for k, v in state.items()}
    return state


# -- building and weights ----------------------------------------------------------------------
def _require_ctglip(kind, path):
    if kind not in ('CTGLIP', 'ctglip.CTGLIP'):
        raise ConfigError(f'{path} holds a {kind!r} model; tools/infer.py runs CT-GLIP models '
                          "(type='CTGLIP'). Fix: give a checkpoint of a configs/ctglip/ config.")


# Training losses hold no weights and may name files of the training machine (a dictionary);
# inference builds the model with this one in their place.
INFERENCE_LOSSES = [dict(type='AnatomyContrastiveLoss')]


def build_model(meta, source):
    """Build the model that ``meta`` describes for inference: its prompt set and abnormality
    vocabulary are the stored contents, not paths of the training machine, and its training
    losses are replaced by ``INFERENCE_LOSSES``."""
    import tempfile
    cfg = json.loads(json.dumps(meta['model']))
    _require_ctglip(cfg.get('type'), source)
    if meta.get('abnormality_vocab') is not None:
        cfg['abnormality_vocab'] = meta['abnormality_vocab']
    with tempfile.TemporaryDirectory() as tmp:
        cfg['prompts'] = write_json(meta['prompts'], osp.join(tmp, 'prompts.json'))
        model = build_for_inference(cfg)
    set_prompts(model, model.prompts, '(stored in the model file)')
    return model


def build_for_inference(model_cfg):
    """``MODELS.build`` without training losses, pretrained-weight loaders or progress bars."""
    from ctglip.registry import MODELS
    cfg = copy.deepcopy(dict(model_cfg))
    cfg['losses'] = copy.deepcopy(INFERENCE_LOSSES)
    cfg.pop('init_cfg', None)  # the weights come from the model file
    with quiet_transformers():
        return MODELS.build(cfg)


@contextlib.contextmanager
def quiet_transformers():
    """No 'Loading weights' progress bar of Hugging Face while a text encoder loads."""
    from transformers.utils import logging as hf_logging
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def set_prompts(model, prompts, source):
    """Give ``model`` a prompt set (already checked, e.g. by ``load_prompts``)."""
    model.prompts = prompts
    model.prompts_file = source


def load_weights(model, state, source):
    """Load a state dict strictly; a mismatch names the file and the first differing keys."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()
        raise CheckpointError(f'{source}: the weights do not fit the model its metadata '
                              f'describes ({" ".join(first[:2])[:300]}). Fix: export the '
                              'checkpoint again with tools/export.py.') from None


def check_text_encoder(model, meta, source, atol=1e-3):
    """The text encoder must give the features it gave in training (frozen encoders are not
    stored in model files but loaded from their folder or package)."""
    import torch
    probe = (meta.get('text_encoder') or {}).get('probe')
    if not probe:
        return
    with torch.no_grad():
        now = model.text_encoder([meta['text_encoder']['probe_text']])[0, :len(probe)].float()
    if not torch.allclose(now.cpu(), torch.tensor(probe), atol=atol):
        raise ConfigError(f'{source}: the text encoder {meta["text_encoder"].get("model_path")!r} '
                          'on this machine gives other text features than the one this model '
                          'was trained with. Fix: install the text encoder of training (same '
                          'package version or model folder).')


# -- exports -----------------------------------------------------------------------------------
def export_paths(out):
    """``(weights, sidecar)`` of an export target: ``X.safetensors`` gives ``X.json`` beside
    it; anything else is a folder receiving ``model.safetensors`` and ``model.json``."""
    out = os.fspath(out)
    if out.endswith('.safetensors'):
        return out, out[:-len('.safetensors')] + '.json'
    return osp.join(out, WEIGHTS_NAME), osp.join(out, SIDECAR_NAME)


def export_model(checkpoint_path, out, thresholds=None):
    """Write a training checkpoint as ``.safetensors`` weights plus a JSON sidecar.

    The sidecar holds the inference metadata (config, vocabulary, preprocessing, prompts,
    temperature, thresholds, version), the config text, the source checkpoint and the
    weights' SHA-256. Frozen text encoder weights are not included (as in the checkpoint): the
    sidecar names the encoder and a probe of its features.

    Returns:
        dict: ``weights``, ``sidecar`` (paths) and ``meta`` (the sidecar's content).
    """
    import torch
    from safetensors.torch import load_file, save_file
    model, meta = model_from_checkpoint(checkpoint_path, thresholds)
    weights_path, sidecar_path = export_paths(out)
    os.makedirs(osp.dirname(osp.abspath(weights_path)), exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = f'{weights_path}.{os.getpid()}.tmp'
    save_file(state, tmp, metadata={'format': 'pt', 'ctglip_export': EXPORT_FORMAT})
    back = load_file(tmp)
    if set(back) != set(state) or not all(torch.equal(back[k], state[k]) for k in state):
        os.remove(tmp)
        raise CheckpointError(f'{weights_path}: the written weights do not read back equal.')
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; an export is for sharing
    os.replace(tmp, weights_path)
    sidecar = {k: v for k, v in meta.items() if k != 'source'}
    sidecar.update(
        format=EXPORT_FORMAT, format_version=EXPORT_FORMAT_VERSION,
        weights=osp.basename(weights_path), weights_sha256=sha256(weights_path),
        exported=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
        source_checkpoint=dict(name=osp.basename(checkpoint_path),
                               iteration=meta['source'].get('iteration'),
                               sha256=sha256(checkpoint_path)))
    write_json(sidecar, sidecar_path)
    return dict(weights=weights_path, sidecar=sidecar_path, meta=sidecar)


def model_from_export(path, thresholds=None):
    """Model and metadata of an export; reads JSON and safetensors only."""
    from safetensors.torch import load_file
    weights_path, sidecar_path = _export_pair(path)
    try:
        with open(sidecar_path, encoding='utf-8') as f:
            sidecar = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f'cannot read the export sidecar {sidecar_path}: {e}. Fix: copy '
                              'the .json written by tools/export.py next to the weights.') from None
    if not isinstance(sidecar, dict) or sidecar.get('format') != EXPORT_FORMAT:
        raise CheckpointError(f'{sidecar_path} is not a ctglip export sidecar (format '
                              f'{EXPORT_FORMAT!r}). Fix: give the .json written by '
                              'tools/export.py.')
    meta = check_inference_meta(sidecar, sidecar_path)
    if not osp.isfile(weights_path):
        raise CheckpointError(f'{sidecar_path} names the weights {weights_path}, which do not '
                              'exist. Fix: keep the .safetensors file next to its sidecar.')
    expected = sidecar.get('weights_sha256')
    if expected and sha256(weights_path) != expected:
        raise CheckpointError(f'{weights_path} is not the weights file its sidecar '
                              f'{sidecar_path} describes (SHA-256 differs). Fix: keep each '
                              '.safetensors with the .json exported with it.')
    try:
        state = load_file(weights_path)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f'cannot read {weights_path}: {e}. Fix: export it again.') from None
    model = build_model(meta, sidecar_path)
    load_weights(model, state, weights_path)
    meta = resolve_thresholds(meta, None, thresholds)
    meta['source'] = dict(kind='export', path=osp.abspath(weights_path),
                          sidecar=osp.abspath(sidecar_path),
                          iteration=(sidecar.get('source_checkpoint') or {}).get('iteration'))
    return model, meta


def _export_pair(path):
    if osp.isdir(path):
        return osp.join(path, WEIGHTS_NAME), osp.join(path, SIDECAR_NAME)
    if path.endswith('.safetensors'):
        return path, path[:-len('.safetensors')] + '.json'
    if path.endswith('.json'):
        try:
            with open(path, encoding='utf-8') as f:
                name = json.load(f).get('weights') or WEIGHTS_NAME
        except (OSError, ValueError, AttributeError):
            name = osp.basename(path)[:-len('.json')] + '.safetensors'
        return osp.join(osp.dirname(path), osp.basename(name)), path
    raise CheckpointError(f'{path}: not a model file ctglip knows. Fix: give a .pth checkpoint, '
                          'an exported .safetensors (with its .json) or the export folder.')


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def write_json(data, path):
    """Write JSON atomically (temporary file, then rename): readers never see half a file."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write('\n')
    os.replace(tmp, path)
    return path
