"""CT-RATE and RadGenome-ChestCT converters on tiny fake downloads in the real layouts."""
import csv
import json
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from ctglip.datasets.converters import convert_ct_rate, convert_radgenome
from ctglip.testing.ct_rate import LABEL_COLUMNS, make_fake_ct_rate, make_fake_radgenome
from ctglip.utils.errors import DataError

LOBES = ('lung_upper_lobe_left', 'lung_lower_lobe_left', 'lung_upper_lobe_right',
         'lung_middle_lobe_right', 'lung_lower_lobe_right')


@pytest.fixture(scope='module')
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp('downloads')
    ct_rate = make_fake_ct_rate(str(root / 'ct_rate'), per_organ_masks=('train_2_b_1',))
    radgenome = make_fake_radgenome(str(root / 'radgenome'), ct_rate)
    return ct_rate, radgenome


def _copy(fake_root, tmp_path):
    """A private copy of the fake CT-RATE to damage."""
    return shutil.copytree(fake_root, str(tmp_path / 'ct_rate'))


def _lines(out):
    with open(osp.join(out, 'manifest.jsonl')) as f:
        return [json.loads(line) for line in f]


def _labels_of(ct_rate, volume):
    split = 'train' if volume.startswith('train') else 'valid'
    with open(osp.join(ct_rate, 'dataset', 'multi_abnormality_labels',
                       f'{split}_predicted_labels.csv'), newline='') as f:
        row = next(r for r in csv.DictReader(f) if r['VolumeName'] == volume)
    return {c.lower() for c in LABEL_COLUMNS if row[c] == '1'}


def test_ct_rate_manifest(fake, tmp_path):
    ct_rate, _ = fake
    out = str(tmp_path / 'out')
    counts = convert_ct_rate(out, root=ct_rate, masks=osp.join(ct_rate, 'masks'),
                             val_fraction=0.25)
    lines = _lines(out)
    assert len(lines) == 12 and counts['total_studies'] == 12
    splits = {line['case_id']: line['split'] for line in lines}
    assert all(s == 'test' for c, s in splits.items() if c.startswith('valid'))
    assert {s for c, s in splits.items() if c.startswith('train')} == {'train', 'val'}
    patient_split = {}
    for line in lines:  # CT-RATE's patients stay in one split
        assert patient_split.setdefault(line['patient_id'], line['split']) == line['split']
    assert counts['patients'] == {'train': 3, 'val': 1, 'test': 2}
    line = next(x for x in lines if x['case_id'] == 'train_1_a_1')
    assert line['label_scheme'] == 'totalseg_v2' and line['patient_id'] == 'train_1'
    assert line['report'].startswith('FINDINGS: Trachea') and '\nIMPRESSION: ' in line['report']
    assert osp.isfile(line['image']) and osp.isfile(line['organ_mask'])
    truth = _labels_of(ct_rate, 'train_1_a_1.nii.gz')
    found = {n for names in line['abnormalities'].values() for n in names}
    assert found == truth
    if 'pleural effusion' in truth:
        assert all('pleural effusion' in line['abnormalities'][lobe] for lobe in LOBES)
    folder = next(x for x in lines if x['case_id'] == 'train_2_b_1')
    assert osp.isdir(folder['organ_mask'])  # a per-organ folder is used as it is
    assert counts['organs_per_study'] == dict(mean=10.0, min=10, max=10)
    report = json.load(open(osp.join(out, 'conversion_report.json')))
    assert report['positive_studies_per_finding']['cardiomegaly'] == sum(
        'cardiomegaly' in _labels_of(ct_rate, f'{x["case_id"]}.nii.gz') for x in lines)
    assert report['abnormal_organs_per_finding']['pleural effusion'] == 5 * report[
        'positive_studies_per_finding']['pleural effusion']


def test_ct_rate_manifest_loads_with_the_ct_rate_vocabulary(fake, tmp_path):
    from ctglip.datasets import CTReportDataset
    ct_rate, _ = fake
    out = str(tmp_path / 'out')
    convert_ct_rate(out, root=ct_rate, masks=osp.join(ct_rate, 'masks'), read_masks=False)
    dataset = CTReportDataset(out, split='test', organ_vocab='totalseg_v2',
                              abnormality_vocab='ct_rate', pipeline=[])
    info = dataset.get_data_info(0)
    assert 'heart' in info['findings'] and info['status']['heart'] in ('normal', 'abnormal')
    assert info['abnormalities'] is not None  # the labels are the ground truth


@pytest.mark.parametrize('damage, message', [
    ('label value', r"train_predicted_labels.csv line 3 \(train_1_b_1.nii.gz\): column "
                    r"'Cardiomegaly' is '2'"),
    ('duplicate report', r'train_reports.csv line 10: VolumeName .* also on line 2'),
    ('missing column', r"has no column\(s\) \['Impressions_EN'\]"),
    ('bad name', r"line 2: volume name 'patient1.nii.gz' is not a CT-RATE name"),
    ('missing volume', r'train_reports.csv line 2: volume train_1_a_1.nii.gz is not under'),
    ('missing mask', r'line 2: no organ mask train_1_a_1.nii.gz'),
    ('shape mismatch', r"train_reports.csv line 2: case 'train_1_a_1': organ_mask .* shape"),
    ('labels without report', r"volume 'train_9_a_1.nii.gz' has labels but no report row"),
])
def test_ct_rate_refuses_inconsistent_input_in_one_line(fake, tmp_path, damage, message):
    import nibabel as nib
    root = _copy(fake[0], tmp_path)
    data = osp.join(root, 'dataset')
    reports = osp.join(data, 'radiology_text_reports', 'train_reports.csv')
    labels = osp.join(data, 'multi_abnormality_labels', 'train_predicted_labels.csv')

    def edit(path, change):
        with open(path, newline='') as f:
            rows = list(csv.reader(f))
        change(rows)
        with open(path, 'w', newline='') as f:
            csv.writer(f).writerows(rows)

    if damage == 'label value':
        edit(labels, lambda rows: rows[2].__setitem__(1 + LABEL_COLUMNS.index('Cardiomegaly'),
                                                      '2'))
    elif damage == 'duplicate report':
        edit(reports, lambda rows: rows.append(rows[1]))
    elif damage == 'missing column':
        edit(reports, lambda rows: [r.pop() for r in rows])
    elif damage == 'bad name':
        edit(reports, lambda rows: rows[1].__setitem__(0, 'patient1.nii.gz'))
    elif damage == 'missing volume':
        shutil.rmtree(osp.join(data, 'train_fixed', 'train_1', 'train_1_a'))
    elif damage == 'missing mask':
        shutil.os.remove(osp.join(root, 'masks', 'train_1_a_1.nii.gz'))
    elif damage == 'shape mismatch':
        nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)),
                 osp.join(root, 'masks', 'train_1_a_1.nii.gz'))
    elif damage == 'labels without report':
        edit(labels, lambda rows: rows.append(['train_9_a_1.nii.gz'] + ['0'] * 18))
    with pytest.raises(DataError, match=message) as info:
        convert_ct_rate(str(tmp_path / 'out'), root=root, masks=osp.join(root, 'masks'))
    assert '\n' not in str(info.value)
    assert not osp.exists(tmp_path / 'out' / 'manifest.jsonl')


def test_ct_rate_skip_missing_counts_what_it_skips(fake, tmp_path):
    root = _copy(fake[0], tmp_path)
    shutil.os.remove(osp.join(root, 'masks', 'valid_1_a_1.nii.gz'))
    counts = convert_ct_rate(str(tmp_path / 'out'), root=root, masks=osp.join(root, 'masks'),
                             skip_missing=True)
    assert counts['total_studies'] == 11
    assert counts['notes'] == {'skipped: organ mask missing': 1}


def test_radgenome_manifest(fake, tmp_path):
    import nibabel as nib
    ct_rate, radgenome = fake
    out = str(tmp_path / 'out')
    files = osp.join(radgenome, 'radgenome_files')
    counts = convert_radgenome(
        out, [osp.join(files, 'train_region_report.csv'),
              osp.join(files, 'validation_region_report.csv')],
        [osp.join(ct_rate, 'dataset')],
        [osp.join(radgenome, 'train_region_mask'), osp.join(radgenome, 'valid_region_mask')],
        labels=[osp.join(ct_rate, 'dataset', 'multi_abnormality_labels', f)
                for f in ('train_predicted_labels.csv', 'valid_predicted_labels.csv')])
    lines = _lines(out)
    assert counts['total_studies'] == len(lines) == 12
    line = next(x for x in lines if x['case_id'] == 'valid_1_a_1')
    assert line['split'] == 'test' and line['label_scheme'] == 'radgenome_regions.json'
    assert line['findings']['trachea'] == ['Trachea and both main bronchi are open.']
    assert set(line['findings']) <= {'lung', 'pleura', 'heart', 'mediastinum', 'esophagus',
                                     'trachea'}
    classes = json.load(open(osp.join(out, 'radgenome_regions.json')))
    label = np.asarray(nib.load(osp.join(out, line['organ_mask'])).dataobj)
    present = {classes[str(v)] for v in np.unique(label) if v}
    assert {'lung', 'heart', 'pleura', 'trachea'} <= present
    truth = _labels_of(ct_rate, 'valid_1_a_1.nii.gz')
    if 'lung nodule' in truth:
        assert line['abnormalities']['lung'] and 'lung nodule' in line['abnormalities']['lung']
    # the manifest loads with the class map as organ vocabulary
    from ctglip.datasets import CTReportDataset
    dataset = CTReportDataset(out, split='test', organ_vocab=osp.join(out, CLASS_MAP),
                              abnormality_vocab='ct_rate', pipeline=[])
    assert dataset.get_data_info(0)['findings']


CLASS_MAP = 'radgenome_regions.json'


def test_radgenome_refuses_an_unknown_region_in_one_line(fake, tmp_path):
    ct_rate, radgenome = fake
    bad = tmp_path / 'region.csv'
    bad.write_text('Volumename,Anatomy,Sentence\ntrain_1_a_1.nii.gz,lung,Clear lungs.\n'
                   'train_1_a_1.nii.gz,liver,Normal liver.\n')
    with pytest.raises(DataError, match=r"region.csv line 3: Anatomy 'liver' is not a "
                                        'RadGenome region') as info:
        convert_radgenome(str(tmp_path / 'out'), [str(bad)], [osp.join(ct_rate, 'dataset')],
                          [osp.join(radgenome, 'train_region_mask')])
    assert '\n' not in str(info.value)


def test_converter_tools_run_and_fail_in_one_line(fake, tmp_path):
    ct_rate, radgenome = fake
    out = str(tmp_path / 'out')
    run = subprocess.run([sys.executable, 'tools/dataset_converters/ct_rate.py', out, '--root',
                          ct_rate, '--masks', osp.join(ct_rate, 'masks'), '--no-mask-read'],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'studies: test 4, train 6, val 2 (total 12)' in run.stdout
    assert 'pleural effusion' in run.stdout
    files = osp.join(radgenome, 'radgenome_files')
    bad = subprocess.run([sys.executable, 'tools/dataset_converters/radgenome.py', out,
                          '--region-reports', osp.join(files, 'train_region_report.csv'),
                          '--volumes', osp.join(ct_rate, 'dataset'), '--masks',
                          str(tmp_path / 'nowhere')], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count('\n') == 0 and 'mask folder' in bad.stderr
