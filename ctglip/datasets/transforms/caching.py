"""A preprocessing cache: run the deterministic head of a pipeline once per study, store it,
and train from the stored arrays.

``CachedPreprocess`` wraps the expensive deterministic transforms (decode, reorient,
resample, window). Its key covers the study's files (path, size, modification time) and the
wrapped transforms' settings, so changing a setting or a file rebuilds the entry. Entries are
written to a temporary file and renamed into place, so two processes filling the cache at once
never expose a half-written entry, and a crash leaves at most a stray temporary file.
"""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import torch

from ctglip.registry import TRANSFORMS
from ctglip.utils.errors import DataError

CACHED_KEYS = ('image', 'organ_label', 'tumor_mask')
FORMAT_VERSION = 1


@TRANSFORMS.register_module()
class CachedPreprocess:
    """Apply ``transforms`` once per study and cache the result under ``cache_dir``.

    Args:
        transforms: the deterministic transforms to cache (configs or callables); the first is
            normally ``LoadCTStudy``.
        cache_dir: where entries go (one ``.npz`` per study and settings). Relative paths are
            taken relative to the dataset folder's parent only if given as such by the config.
        image_dtype: stored image dtype; ``float16`` halves the size and keeps ~1e-3
            precision in the [0, 1] window (about 2 HU for a 2000 HU window).
    """

    def __init__(self, transforms, cache_dir, image_dtype='float16'):
        self.transform_cfgs = [t if isinstance(t, dict) else repr(t) for t in transforms]
        self.transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]
        self.cache_dir = cache_dir
        self.image_dtype = np.dtype(image_dtype)
        self.settings = json.dumps(dict(transforms=self.transform_cfgs, version=FORMAT_VERSION,
                                        image_dtype=self.image_dtype.str), sort_keys=True,
                                   default=str)
        self.hits = self.misses = 0

    def key(self, results):
        parts = [self.settings]
        for field in ('img_path', 'mask_path', 'tumor_path', 'label_scheme'):
            value = results.get(field)
            if value and field != 'label_scheme':  # one entry however the data root is spelt
                value = osp.realpath(value)
            parts.append(f'{field}={value}')
            if value and osp.exists(value):
                st = os.stat(value)
                parts.append(f'{st.st_size}:{st.st_mtime_ns}')
        digest = hashlib.sha1('|'.join(parts).encode()).hexdigest()[:16]
        return osp.join(self.cache_dir, f'{results.get("case_id", "case")}-{digest}.npz')

    def __call__(self, results):
        path = self.key(results)
        if osp.isfile(path):
            try:
                with np.load(path) as stored:
                    for key in CACHED_KEYS:
                        if key in stored:
                            results[key] = torch.from_numpy(stored[key].astype(
                                np.float32 if key == 'image' else np.int64))
                    if 'image_affine' in stored:  # written when RecordAffine is cached
                        results['image_affine'] = stored['image_affine'].astype(np.float64)
                self.hits += 1
                return results
            except (OSError, ValueError, KeyError) as e:
                raise DataError(f'preprocessing cache entry {path} is unreadable ({e}). Fix: '
                                'delete it (or the whole cache folder) and run again.') from None
        for t in self.transforms:
            results = t(results)
        self._store(path, results)
        self.misses += 1
        return results

    def _store(self, path, results):
        os.makedirs(self.cache_dir, exist_ok=True)
        arrays = {}
        for key in CACHED_KEYS:
            if key in results:
                value = results[key]
                value = value.as_tensor() if hasattr(value, 'as_tensor') else value
                value = np.asarray(value)
                arrays[key] = value.astype(self.image_dtype) if key == 'image' else \
                    value.astype(np.uint8 if value.max() < 256 else np.int16)
        if results.get('image_affine') is not None:
            arrays['image_affine'] = np.asarray(results['image_affine'], dtype=np.float64)
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'wb') as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see nothing or the whole entry

    def __repr__(self):
        return f'{type(self).__name__}(cache_dir={self.cache_dir!r}, {len(self.transforms)} transforms)'
