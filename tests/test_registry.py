"""Registries: unknown names, scopes, lazy imports, and every registered name builds."""
import subprocess
import sys

import pytest

from ctglip import registry
from ctglip.utils.errors import UnknownTypeError


def test_unknown_type_names_registry_entries_and_nearest_match():
    with pytest.raises(UnknownTypeError) as e:
        registry.POOLERS.build(dict(type='OrganMaskPoler'))
    msg = str(e.value)
    assert "'pooler' registry" in msg
    assert "did you mean 'OrganMaskPooler'" in msg
    assert 'GlobalPooler' in msg  # lists what it holds


def test_unknown_type_without_close_match_says_how_to_register():
    with pytest.raises(UnknownTypeError, match='custom_imports'):
        registry.BACKBONES.build(dict(type='Zzzzzz'))


def test_contains_does_not_raise():
    assert 'CTGLIP' in registry.MODELS
    assert 'NoSuchModel' not in registry.MODELS


def test_runner_kinds_resolve_through_default_scope():
    """mmengine's root registries find ctglip's classes once the default scope is ctglip."""
    from mmengine.registry import DATASETS, MODELS, TRANSFORMS, DefaultScope
    with DefaultScope.overwrite_default_scope('ctglip'):
        for root, name in ((MODELS, 'CTGLIP'), (DATASETS, 'CTReportDataset'),
                           (TRANSFORMS, 'PackCTInputs')):
            # what build_from_cfg does: switch to the default scope's child, then look up
            with root.switch_scope_and_registry(None) as reg:
                assert reg.scope == 'ctglip'
                assert reg.get(name) is not None
        # mmengine's own entries stay reachable through the parent.
        assert registry.OPTIMIZERS.get('AdamW') is not None


def test_children_are_in_scope_ctglip():
    for name in ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'VISUALIZERS'):
        reg = getattr(registry, name)
        assert reg.scope == 'ctglip'
        assert reg.parent is not None and reg.parent.scope == 'mmengine'


def test_import_ctglip_is_fast_and_lazy():
    code = ('import time, sys; t = time.perf_counter(); import ctglip; '
            'dt = time.perf_counter() - t; '
            'print(dt, "torch" in sys.modules, "monai" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert float(out[0]) < 2.0, out
    assert out[1:] == ['False', 'False'], 'import ctglip must not import torch or monai'
