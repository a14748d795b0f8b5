"""Checkpoints that carry their preprocessing, safetensors exports that load without pickle and
predict exactly as the checkpoint does, and refusal of tampered model files."""
import json
import os
import os.path as osp
import shutil
import sys
import time

import pytest
import torch

import inference_helpers as helpers


@pytest.fixture(scope='session')
def checkpoint(tiny_bert, tiny_data, tmp_path_factory):
    return helpers.trained_checkpoint(tiny_bert, tiny_data, tmp_path_factory)


@pytest.fixture(scope='session')
def export(checkpoint, tmp_path_factory):
    return helpers.exported(checkpoint, tmp_path_factory)


def test_checkpoint_carries_what_inference_needs(checkpoint, tiny_bert):
    from ctglip import __version__
    from ctglip.apis.inference_meta import META_KEY, check_inference_meta
    meta = torch.load(checkpoint, map_location='cpu', weights_only=False)['meta'][META_KEY]
    check_inference_meta(meta, checkpoint)
    json.dumps(meta)  # plain data: it goes into the export sidecar unchanged
    assert meta['ctglip_version'] == __version__
    assert meta['model']['type'] == 'CTGLIP' and len(meta['organ_vocab']) == 104
    assert meta['label_scheme'] == 'totalseg_v1'
    pre = meta['preprocessing']
    assert pre['orientation'] == 'RAS' and pre['spacing_mm'] == [4.0, 4.0, 4.0]
    assert pre['hu_windows'] == [[-1000.0, 1000.0]]
    assert pre['view'] == dict(type='CenterPadCrop', spatial_size=[32, 32, 32])
    assert [t['type'] for t in pre['test_pipeline']][0] == 'LoadCTStudy'
    assert 'CachedPreprocess' not in json.dumps(pre)
    assert meta['prompts']['organ_templates'] and meta['prompts']['abnormalities']['liver']
    assert 0 < meta['temperature'] < 1
    # the thresholds of the validation at iteration 2 (the checkpoint of iteration 4 is saved
    # before the validation of iteration 4)
    assert meta['thresholds'] and all(0 <= v <= 1 for v in meta['thresholds'].values())
    assert 'validation split during training (iteration 2)' in meta['thresholds_source']
    assert meta['text_encoder']['model_path'] == tiny_bert
    assert len(meta['text_encoder']['probe']) == 8


def test_export_writes_safetensors_and_sidecar(export, checkpoint):
    from safetensors import safe_open

    from ctglip.apis.model_files import sha256
    weights, sidecar = export['weights'], export['sidecar']
    assert weights.endswith('model.safetensors') and sidecar.endswith('model.json')
    with open(sidecar) as f:
        data = json.load(f)
    assert data['format'] == 'ctglip-export' and data['weights'] == 'model.safetensors'
    assert data['weights_sha256'] == sha256(weights)
    assert data['source_checkpoint']['name'] == 'iter_4.pth'
    assert data['source_checkpoint']['iteration'] == 4
    assert 'model = dict(' in data['config_text']  # the config, for the record (never run)
    for key in ('organ_vocab', 'preprocessing', 'prompts', 'temperature', 'thresholds',
                'ctglip_version', 'label_scheme'):
        assert key in data
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    with safe_open(weights, 'pt') as f:
        assert set(f.keys()) == set(state)
        assert all(torch.equal(f.get_tensor(k), state[k]) for k in state)
    assert oct(os.stat(weights).st_mode & 0o044) == oct(0o044)  # readable by others: shareable


def test_export_tool_names_files_and_thresholds(checkpoint, tmp_path, capsys):
    sys.path.insert(0, helpers.REPO)
    from tools import export as export_tool

    from ctglip.utils.cli import run_cli
    work = tmp_path / 'work'
    work.mkdir()
    ckpt = work / 'iter_4.pth'
    shutil.copy(checkpoint, ckpt)
    # tools/test.py ran on this checkpoint afterwards: its validation thresholds win
    time.sleep(0.01)
    (work / 'val_calibration').mkdir()
    (work / 'val_calibration' / 'abn_thresholds.json').write_text(json.dumps(
        dict(rule='nearest_01', thresholds={'liver/liver cyst': 0.61})))
    assert run_cli(export_tool.main, [str(ckpt), str(tmp_path / 'out' / 'tiny.safetensors')]) == 0
    out = capsys.readouterr().out
    assert 'tiny.safetensors' in out and 'tiny.json' in out
    data = json.loads((tmp_path / 'out' / 'tiny.json').read_text())
    assert data['weights'] == 'tiny.safetensors'
    assert data['thresholds'] == {'liver/liver cyst': 0.61}
    assert 'val_calibration' in data['thresholds_source']
    # --thresholds names the file to store
    given = tmp_path / 'given.json'
    given.write_text(json.dumps({'liver cyst': 0.42}))
    assert run_cli(export_tool.main, [str(ckpt), str(tmp_path / 'out2'), '--thresholds',
                                      str(given)]) == 0
    assert json.loads((tmp_path / 'out2' / 'model.json').read_text())['thresholds'] == \
        {'liver cyst': 0.42}
    # a missing checkpoint is one line
    assert run_cli(export_tool.main, [str(tmp_path / 'nope.pth'), str(tmp_path / 'x')]) == 2
    assert 'nope.pth does not exist' in capsys.readouterr().err


def test_exported_model_predicts_exactly_as_the_checkpoint(checkpoint, export, real_data):
    ct = osp.join(real_data, 'ct.nii.gz')
    mask = osp.join(real_data, 'seg_total_v2.nii.gz')
    from_ckpt = helpers.inferencer(checkpoint)
    from_export = helpers.inferencer(export['weights'])
    queries = ['a stone in the gallbladder']
    a = from_ckpt(ct, masks=mask, queries=queries)[0]
    b = from_export(ct, masks=mask, queries=queries)[0]
    for result in (a, b):
        result.pop('model')
    assert a == b and a['organs']['liver']['abnormalities']
    organs_a = from_ckpt.encode_organs(ct, mask)[0]
    organs_b = from_export.encode_organs(ct, mask)[0]
    assert organs_a['organs'] == organs_b['organs']
    assert torch.equal(organs_a['embeds'], organs_b['embeds'])
    texts = ['A cyst in the liver.', 'No stones in the gallbladder.']
    assert torch.equal(from_ckpt.encode_text(texts), from_export.encode_text(texts))


NO_PICKLE_SCRIPT = '''
import json, sys
import torch
from ctglip.apis import CTGLIPInferencer   # imports first; the watch starts below

events = []
sys.addaudithook(lambda event, args: events.append(str(args)) if event == 'pickle.find_class'
                 else None)

def refuse(*args, **kwargs):
    raise AssertionError('torch.load called while loading an export')

real_load, torch.load = torch.load, refuse
result = CTGLIPInferencer(sys.argv[1], device='cpu')(sys.argv[2], masks=sys.argv[3])[0]
export_events = len(events)
torch.load = real_load
CTGLIPInferencer(sys.argv[4], device='cpu')  # control: a .pth checkpoint does unpickle
print(json.dumps(dict(export=export_events, checkpoint=len(events) - export_events,
                      organs=len(result['organs']))))
'''


def test_loading_an_export_runs_no_pickle(checkpoint, export, real_data, tmp_path):
    """Every unpickling resolves classes through ``pickle.find_class`` (an audit event) and
    torch.load is replaced by a function that fails: loading the export and predicting must
    trigger neither; loading the checkpoint, the control, triggers the event."""
    script = tmp_path / 'no_pickle.py'
    script.write_text(NO_PICKLE_SCRIPT)
    proc = helpers.run_tool([str(script), export['weights'], osp.join(real_data, 'ct.nii.gz'),
                             osp.join(real_data, 'seg_total_v2.nii.gz'), checkpoint])
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts['export'] == 0 and counts['organs'] > 10
    assert counts['checkpoint'] > 0  # the watch does see unpickling


def _tampered(export, tmp_path, edit):
    folder = tmp_path / 'tampered'
    shutil.copytree(osp.dirname(export['weights']), folder)
    data = json.loads((folder / 'model.json').read_text())
    edit(data, folder)
    (folder / 'model.json').write_text(json.dumps(data))
    return str(folder)


@pytest.mark.parametrize('edit, message', [
    (lambda d, f: d['model'].update(type='os.system'), "type='os.system' is not a type"),
    (lambda d, f: d['model']['backbone'].update(type='builtins.eval'), 'is not a type registered'),
    (lambda d, f: d['preprocessing']['test_pipeline'].insert(
        1, dict(type='subprocess.run', args=['true'])), 'is not a type registered'),
    (lambda d, f: d['model'].update(_scope_='mmdet'), '"_scope_" key is not accepted'),
    (lambda d, f: d.update(weights_sha256='0' * 64), 'SHA-256 differs'),
    (lambda d, f: d.update(schema=99), 'upgrade ctglip'),
    (lambda d, f: d.pop('prompts'), "lacks ['prompts']"),
    (lambda d, f: d.update(format='something-else'), 'not a ctglip export sidecar'),
])
def test_tampered_export_is_refused(export, tmp_path, edit, message):
    from ctglip.apis import load_model
    from ctglip.utils.errors import CTGLIPError
    folder = _tampered(export, tmp_path, edit)
    with pytest.raises(CTGLIPError, match=message.replace('(', r'\(').replace('[', r'\[')):
        load_model(folder)


def test_checkpoint_without_inference_meta_is_rebuilt_from_its_config(checkpoint, tmp_path):
    """Checkpoints written before InferenceMetaHook (work_dirs/ctglip_mit_104organ) still load."""
    from ctglip.apis import load_model
    from ctglip.apis.inference_meta import META_KEY
    ck = torch.load(checkpoint, map_location='cpu', weights_only=False)
    stored = ck['meta'].pop(META_KEY)
    old = tmp_path / 'old.pth'
    torch.save(ck, old)
    model, meta = load_model(str(old))
    assert 'rebuilt from the config' in meta['note'] and meta['thresholds'] is None
    for key in ('organ_vocab', 'preprocessing', 'prompts', 'label_scheme'):
        assert meta[key] == stored[key], key
    assert meta['temperature'] == pytest.approx(stored['temperature'])


def test_bad_model_files_are_one_line_errors(tmp_path):
    from ctglip.apis import load_model
    from ctglip.utils.errors import CTGLIPError
    with pytest.raises(CTGLIPError, match='does not exist'):
        load_model(str(tmp_path / 'missing.pth'))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(b'PK\x03\x04 not really a checkpoint')
    with pytest.raises(CTGLIPError, match='cannot read checkpoint'):
        load_model(str(cut))
    (tmp_path / 'x.onnx').write_bytes(b'')
    with pytest.raises(CTGLIPError, match='not a model file ctglip knows'):
        load_model(str(tmp_path / 'x.onnx'))


def test_thresholds_from_validation_metrics():
    from ctglip.apis.inference_meta import threshold_for, thresholds_from_metrics
    metrics = {'zeroshot/abn_threshold/liver/liver cyst': 0.6, 'zeroshot/abn_auc': 0.8,
               'other/abn_threshold/kidney/kidney stone': 0.2}
    found = thresholds_from_metrics(metrics)
    assert found == {'liver/liver cyst': 0.6}  # the first prefix only
    assert thresholds_from_metrics({'abn_threshold/spleen/splenomegaly': 0.3}) == \
        {'spleen/splenomegaly': 0.3}
    assert threshold_for(found, 'liver', 'liver cyst') == 0.6
    assert threshold_for({'liver cyst': 0.4}, 'liver', 'liver cyst') == 0.4
    assert threshold_for(found, 'liver', 'liver mass') is None and threshold_for(None, 'a', 'b') \
        is None


def test_inference_meta_hook(checkpoint, caplog):
    import logging
    from types import SimpleNamespace

    from ctglip.apis import load_model
    from ctglip.apis.inference_meta import META_KEY
    from ctglip.engine.hooks import InferenceMetaHook
    model, meta = load_model(checkpoint)
    cfg = dict(model=meta['model'], test_dataloader=dict(
        dataset=dict(pipeline=meta['preprocessing']['test_pipeline'])))
    runner = SimpleNamespace(model=model, cfg=cfg, logger=logging.getLogger('hook_test'), iter=7)
    hook = InferenceMetaHook()
    hook.after_val_epoch(runner, {'zeroshot/abn_threshold/liver/liver cyst': 0.3})
    saved = {'meta': {}}
    hook.before_save_checkpoint(runner, saved)
    stored = saved['meta'][META_KEY]
    assert stored['thresholds'] == {'liver/liver cyst': 0.3}
    assert stored['thresholds_source'].endswith('(iteration 7)')
    assert stored['preprocessing']['test_pipeline'] == meta['preprocessing']['test_pipeline']
    # resuming keeps the thresholds of the run
    resumed = InferenceMetaHook()
    resumed.after_load_checkpoint(runner, saved)
    assert resumed.thresholds == {'liver/liver cyst': 0.3}
    # a config without a test or val pipeline: checkpoints are still written, with a warning
    runner.cfg = dict(model=meta['model'])
    bare = {'meta': {}}
    with caplog.at_level(logging.WARNING, logger='hook_test'):
        hook.before_save_checkpoint(runner, bare)
        hook.before_save_checkpoint(runner, bare)
    assert META_KEY not in bare['meta']
    assert len([r for r in caplog.records if 'no inference metadata' in r.message]) == 1
    # other models are left alone
    runner.model = torch.nn.Linear(2, 2)
    other = {'meta': {}}
    hook.before_save_checkpoint(runner, other)
    assert other == {'meta': {}}
