"""tools/infer.py and CTGLIPInferencer on the real CT (NIfTI and DICOM), folders and manifests
with broken cases, free-text queries, embeddings and the no-mask behaviour."""
import csv
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
import torch

import inference_helpers as helpers

CASE_FILES = ('predictions.json', 'slices.png', 'abnormalities.png', 'queries.png',
              'abnormality_probability.nii.gz', 'organ_recognition.nii.gz', 'query_1.nii.gz',
              'organ_names.ctbl', 'organ_names_itksnap.txt')


@pytest.fixture(scope='session')
def checkpoint(tiny_bert, tiny_data, tmp_path_factory):
    return helpers.trained_checkpoint(tiny_bert, tiny_data, tmp_path_factory)


@pytest.fixture(scope='session')
def inferencer(checkpoint):
    return helpers.inferencer(checkpoint)


def infer_cli(args):
    sys.path.insert(0, helpers.REPO)
    from tools import infer
    return infer.cli(args)


def check_case_outputs(case_dir, mask_path, queries=1):
    """Every output of a case is there, and the overlays lie on the mask's voxel grid."""
    import nibabel as nib
    for name in CASE_FILES if queries else [f for f in CASE_FILES if 'quer' not in f]:
        assert osp.isfile(osp.join(case_dir, name)), name
    with open(osp.join(case_dir, 'predictions.json')) as f:
        result = json.load(f)
    mask = nib.load(mask_path)
    for name in ('abnormality_probability.nii.gz', 'organ_recognition.nii.gz'):
        overlay = nib.load(osp.join(case_dir, name))
        assert overlay.shape == mask.shape and np.allclose(overlay.affine, mask.affine)
        assert nib.aff2axcodes(overlay.affine) == nib.aff2axcodes(mask.affine)
    probs = np.asanyarray(nib.load(osp.join(case_dir, 'abnormality_probability.nii.gz')).dataobj)
    liver_voxels = np.asanyarray(mask.dataobj) == 5  # v2 label 5: liver
    liver = result['organs']['liver']
    expected = max(a['probability'] for a in liver['abnormalities'].values())
    assert np.allclose(probs[liver_voxels], expected, atol=1e-6)
    assert len(liver['recognition']['top5']) == 5
    assert sum(e['probability'] for e in liver['recognition']['top5']) <= 1.0 + 1e-6
    for abn in liver['abnormalities'].values():
        assert 0 <= abn['probability'] <= 1 and abn['call'] == (abn['probability'] >=
                                                                abn['threshold'])
    return result


def test_infer_tool_on_the_real_nifti(checkpoint, real_data, tmp_path):
    """The command of the README, end to end in a fresh process."""
    out = tmp_path / 'out'
    mask = osp.join(real_data, 'seg_total_v2.nii.gz')
    proc = helpers.run_tool(['tools/infer.py', osp.join(real_data, 'ct.nii.gz'), '--mask', mask,
                             '--checkpoint', checkpoint, '--out', str(out),
                             '--query', 'a stone in the gallbladder'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '1 of 1 case(s) done' in proc.stdout
    result = check_case_outputs(str(out / 'ct'), mask)
    assert result['label_scheme'] == 'totalseg_v2'  # detected from the mask
    assert result['view']['mode'] == 'whole' and result['view']['spacing_mm'] == [4.0] * 3
    assert result['model']['thresholds_source'].startswith('chosen on the validation split')
    calibrated = [a for e in result['organs'].values()
                  for a in e.get('abnormalities', {}).values() if a['calibrated']]
    assert calibrated  # the tiny run calibrated some abnormalities on its validation split
    assert set(result['queries']) == {'a stone in the gallbladder'}
    assert result['organs']['gallbladder']['queries']['a stone in the gallbladder'][
        'probability'] is not None
    with open(out / 'predictions.csv') as f:
        rows = list(csv.DictReader(f))
    n_abn = sum(len(e.get('abnormalities', {})) for e in result['organs'].values())
    assert len(rows) == n_abn + len(result['organs'])  # + one query row per organ
    assert {r['kind'] for r in rows} == {'abnormality', 'query'}
    run = json.loads((out / 'run.json').read_text())
    assert run['done'] == 1 and not run['failed']


def test_infer_tool_on_the_real_dicom_series(checkpoint, real_data, tmp_path, capsys):
    out = tmp_path / 'out'
    mask = osp.join(real_data, 'dicom_seg_total_v2.nii.gz')
    assert infer_cli([osp.join(real_data, 'dicom'), '--mask', mask, '--checkpoint', checkpoint,
                      '--out', str(out), '--query', 'an enlarged spleen']) == 0
    result = check_case_outputs(str(out / 'dicom'), mask)
    assert result['view']['input_spacing_mm'] == pytest.approx([0.9766, 0.9766, 2.0], abs=1e-3)
    assert result['organs']['spleen']['voxels_in_view'] > 100
    assert 'error' not in capsys.readouterr().err


def test_folder_with_a_broken_case_finishes_the_others(checkpoint, real_data, tmp_path, capsys):
    cases, masks = tmp_path / 'cases', tmp_path / 'masks'
    cases.mkdir()
    masks.mkdir()
    for name in ('a', 'b'):
        shutil.copy(osp.join(real_data, 'ct.nii.gz'), cases / f'{name}.nii.gz')
        shutil.copy(osp.join(real_data, 'seg_total_v2.nii.gz'), masks / f'{name}.nii.gz')
    (cases / 'broken.nii.gz').write_bytes(b'<html>502 Bad Gateway</html>')
    shutil.copy(osp.join(real_data, 'seg_total_v2.nii.gz'), masks / 'broken.nii.gz')
    out = tmp_path / 'out'
    assert infer_cli([str(cases), '--mask', str(masks), '--checkpoint', checkpoint, '--out',
                      str(out), '--no-pictures']) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and "case 'broken'" in errors[0] and 'not a NIfTI file' in errors[0]
    assert 'failed: broken' in captured.out
    assert (out / 'a' / 'predictions.json').is_file() and (out / 'b' / 'predictions.json').is_file()
    assert not (out / 'broken' / 'predictions.json').exists()
    run = json.loads((out / 'run.json').read_text())
    assert run['done'] == 2 and list(run['failed']) == ['broken']
    with open(out / 'predictions.csv') as f:
        assert {r['case_id'] for r in csv.DictReader(f)} == {'a', 'b'}


def test_manifest_input_runs_both_real_scans_and_reports_a_bad_line(checkpoint, real_data,
                                                                    tmp_path, capsys):
    lines = [dict(case_id='nifti', image=osp.join(real_data, 'ct.nii.gz'),
                  organ_mask=osp.join(real_data, 'seg_total_v2.nii.gz'),
                  label_scheme='totalseg_v2'),
             dict(case_id='dicom', image=osp.join(real_data, 'dicom'),
                  organ_mask=osp.join(real_data, 'dicom_seg_total_v2.nii.gz')),
             dict(case_id='gone', image='missing/ct.nii.gz', organ_mask='missing/seg.nii.gz')]
    manifest = tmp_path / 'manifest.jsonl'
    manifest.write_text(''.join(json.dumps(line) + '\n' for line in lines) + '{"case_id": \n')
    out = tmp_path / 'out'
    assert infer_cli([str(manifest), '--checkpoint', checkpoint, '--out', str(out),
                      '--no-pictures']) == 1
    err = capsys.readouterr().err
    assert "case 'gone'" in err and 'does not exist' in err and 'not valid JSON' in err
    run = json.loads((out / 'run.json').read_text())
    assert run['done'] == 2 and set(run['failed']) == {'gone', 'line_4'}


def test_bad_input_corpus_fails_only_the_broken_case(checkpoint, tiny_data, tmp_path):
    """Every kind of the shared bad-input corpus: the broken case is reported (with the
    corpus' message) and the other cases of the manifest finish."""
    from ctglip.testing import BAD_INPUT_KINDS, make_bad_dataset
    from ctglip.testing.bad_inputs import BROKEN_CASE
    not_errors_here = {'empty_report', 'patient_in_two_splits'}  # reports are not read
    messages = {'missing_field': 'no organ mask'}  # inference makes masks, training needs them
    # the tiny dataset's organs lie mirrored (its liver is on the patient's left)
    lenient = helpers.inferencer(checkpoint, skip_checks=['laterality'])
    for kind, spec in BAD_INPUT_KINDS.items():
        root = make_bad_dataset(kind, str(tmp_path / kind), base=tiny_data)
        results = lenient(root, skip_errors=True)
        failed = {r['case_id']: r['error'] for r in results if 'error' in r}
        done = [r for r in results if 'error' not in r]
        if kind in not_errors_here:
            assert not failed, (kind, failed)
            continue
        assert len(failed) == 1, (kind, failed)
        (case, error), = failed.items()
        assert messages.get(kind, spec.message) in error, (kind, error)
        assert case in (BROKEN_CASE, 'line_1'), (kind, case)
        assert len(done) >= 6, kind


def test_tiny_dataset_is_mirrored_and_refused(inferencer, tiny_data):
    """The laterality check on its own crafted input: the tiny test dataset has its right
    organs at -x, the patient's left in RAS."""
    from ctglip.apis import resolve_cases
    from ctglip.utils.errors import DataError
    case = resolve_cases(osp.join(tiny_data, 'manifest.jsonl'))[0]
    with pytest.raises(DataError, match='mirrored left-right'):
        inferencer.prepare(case)


def test_encode_text_and_organs(inferencer, real_data):
    texts = [f'A {n} mm cyst in the liver.' for n in range(5)]
    one = inferencer.encode_text(texts, batch_size=2)
    assert one.shape == (5, 32) and torch.allclose(one.norm(dim=-1), torch.ones(5))
    assert torch.allclose(one, inferencer.encode_text(texts, batch_size=256), atol=1e-6)
    assert inferencer.encode_text([]).shape == (0, 32)
    ct, mask = osp.join(real_data, 'ct.nii.gz'), osp.join(real_data, 'seg_total_v2.nii.gz')
    joint, = inferencer.encode_organs(ct, mask)
    assert joint['case_id'] == 'ct' and 'liver' in joint['organs']
    assert joint['embeds'].shape == (len(joint['organs']), 32)
    assert torch.allclose(joint['embeds'].norm(dim=-1), torch.ones(len(joint['organs'])),
                          atol=1e-5)
    pooled, = inferencer.encode_organs(ct, mask, space='pooled')
    assert pooled['organs'] == joint['organs']
    assert pooled['embeds'].shape == (len(joint['organs']), inferencer.model.pooled_channels)
    both = inferencer.encode_organs([ct, osp.join(real_data, 'dicom')],
                                    [mask, osp.join(real_data, 'dicom_seg_total_v2.nii.gz')],
                                    batch_size=2)
    assert [b['case_id'] for b in both] == ['ct', 'dicom']
    # retrieval: the organ most similar to 'This is the liver.' in the joint space
    sims = joint['embeds'] @ inferencer.encode_text(['This is the liver.'])[0]
    assert sims.shape == (len(joint['organs']),)


def test_pipeline_view_reports_organs_outside_the_crop(checkpoint, real_data):
    """view='pipeline' is the test pipeline's 32^3 crop at 4 mm (128 mm): organs of a whole
    abdomen fall outside it and are listed; view='whole' scores them."""
    ct, mask = osp.join(real_data, 'ct.nii.gz'), osp.join(real_data, 'seg_total_v2.nii.gz')
    cropped = helpers.inferencer(checkpoint, view='pipeline')(ct, masks=mask)[0]
    whole = helpers.inferencer(checkpoint)(ct, masks=mask)[0]
    assert cropped['view']['shape'] == [32, 32, 32]
    outside = [o for o, why in cropped['organs_not_scored'].items() if 'crop' in why]
    assert outside and set(outside) <= set(whole['organs'])
    assert len(whole['organs']) > len(cropped['organs'])


def test_custom_prompts_keep_thresholds_only_where_unchanged(checkpoint, real_data, tmp_path):
    from ctglip.models.ctglip import DEFAULT_PROMPTS
    with open(DEFAULT_PROMPTS) as f:
        prompts = json.load(f)
    prompts['abnormalities']['liver']['liver cyst']['positive'] = ['A round cyst in the liver.']
    path = tmp_path / 'prompts.json'
    path.write_text(json.dumps(prompts))
    custom = helpers.inferencer(checkpoint, prompts=str(path))
    result = custom(osp.join(real_data, 'ct.nii.gz'),
                    masks=osp.join(real_data, 'seg_total_v2.nii.gz'))[0]
    assert result['model']['prompts'] == str(path)
    cyst = result['organs']['liver']['abnormalities']['liver cyst']
    assert not cyst['calibrated'] and cyst['threshold'] == 0.5
    stored = custom.meta['thresholds']
    unchanged = [k for k in stored if k != 'liver/liver cyst']
    group, name = unchanged[0].split('/')
    organ = {'spleen': 'spleen', 'liver': 'liver'}[group]
    kept = result['organs'][organ]['abnormalities'][name]
    assert kept['calibrated'] and kept['threshold'] == pytest.approx(stored[unchanged[0]],
                                                                     abs=1e-6)


def test_without_mask_and_without_totalsegmentator_one_line_with_the_command(
        checkpoint, real_data, tmp_path, monkeypatch, capsys):
    import importlib.util
    if importlib.util.find_spec('totalsegmentator') is not None:
        pytest.skip('TotalSegmentator is installed here')
    monkeypatch.setenv('PATH', str(tmp_path))  # no TotalSegmentator on it
    code = infer_cli([osp.join(real_data, 'ct.nii.gz'), '--checkpoint', checkpoint, '--out',
                      str(tmp_path / 'out')])
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error:'), err
    assert 'pip install TotalSegmentator && TotalSegmentator -i ' in lines[0]
    assert '--ml' in lines[0] and '--mask ct_organs.nii.gz' in lines[0]


def test_without_mask_runs_totalsegmentator_when_installed(checkpoint, real_data, tmp_path,
                                                           monkeypatch, capsys):
    """A stand-in ``TotalSegmentator`` on PATH (it writes the real mask to ``-o``)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = bin_dir / 'TotalSegmentator'
    fake.write_text(f'#!{sys.executable}\nimport shutil, sys\n'
                    'args = sys.argv[1:]\n'
                    'assert "--ml" in args\n'
                    f'shutil.copy({osp.join(real_data, "seg_total_v2.nii.gz")!r}, '
                    'args[args.index("-o") + 1])\n')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    out = tmp_path / 'out'
    assert infer_cli([osp.join(real_data, 'ct.nii.gz'), '--checkpoint', checkpoint, '--out',
                      str(out), '--no-pictures']) == 0
    err = capsys.readouterr().err
    assert 'running TotalSegmentator' in err and '--ml' in err
    result = json.loads((out / 'ct' / 'predictions.json').read_text())
    assert result['organ_mask'] == str(out / 'ct' / 'ct_organs.nii.gz')
    assert result['label_scheme'] == 'totalseg_v2' and 'liver' in result['organs']
    assert any('made by TotalSegmentator' in w for w in result['warnings'])


def test_input_forms_resolve_to_cases(real_data, tmp_path):
    from ctglip.apis import resolve_cases
    from ctglip.utils.errors import DataError
    nifti, = resolve_cases(osp.join(real_data, 'ct.nii.gz'))
    assert nifti.case_id == 'ct' and nifti.mask is None
    dicom, = resolve_cases(osp.join(real_data, 'dicom') + '/')
    assert dicom.case_id == 'dicom' and dicom.image.endswith('dicom/')
    folder = resolve_cases(real_data)  # NIfTI files and the DICOM folder inside
    assert {c.case_id for c in folder} >= {'ct', 'dicom'}
    weird = resolve_cases(osp.join(real_data, 'ct.nii.gz'))[0]
    weird.case_id = 'sub/../x y'
    assert weird.folder_name == 'sub_.._x_y'
    with pytest.raises(DataError, match='does not exist'):
        resolve_cases(str(tmp_path / 'nothing.nii.gz'))
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(DataError, match='neither a NIfTI file'):
        resolve_cases(str(tmp_path / 'notes.txt'))
    with pytest.raises(DataError, match='holds no NIfTI file'):
        resolve_cases(str(tmp_path))


def test_mask_as_a_folder_of_per_organ_files(inferencer, real_data, tmp_path):
    """TotalSegmentator's default output (one binary file per organ) reads like its --ml file."""
    from ctglip.datasets.organs import scheme_classes
    labels, affine = helpers.load_nifti(osp.join(real_data, 'seg_total_v2.nii.gz'))
    folder = tmp_path / 'segmentations'
    for value, name in scheme_classes('totalseg_v2').items():
        helpers.save_nifti(str(folder / f'{name}.nii.gz'), (labels == value).astype(np.uint8),
                           affine)
    ct = osp.join(real_data, 'ct.nii.gz')
    per_organ = inferencer(ct, masks=str(folder), out_dir=str(tmp_path / 'out'),
                           pictures=False)[0]
    multi_label = inferencer(ct, masks=osp.join(real_data, 'seg_total_v2.nii.gz'))[0]
    assert per_organ['label_scheme'] == 'totalseg_v2'
    assert per_organ['organs'] == multi_label['organs']
    import nibabel as nib
    overlay = nib.load(str(tmp_path / 'out' / 'ct' / 'organ_recognition.nii.gz'))
    assert overlay.shape == labels.shape and np.allclose(overlay.affine, affine)
