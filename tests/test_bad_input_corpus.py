"""The bad-input corpus (``ctglip.testing.bad_inputs``) through every tool that reads scans.

Each kind must give one clear error (the case or manifest line, the file, a fix) or, where
``skip_invalid`` allows it, a counted skip: no traceback from deep inside, no partial output.
A new command-line tool that reads scans gets a test here, parametrized over ``KINDS``.

The train tool runs in process for every kind (``run_cli(tools.train.main, argv)``, a few
seconds each) and as a subprocess for three representative kinds.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from ctglip.testing.bad_inputs import (BAD_INPUT_KINDS, BAD_REPORT_KINDS, BAD_TUMOR_KINDS,
                                       BROKEN_CASE, NUM_CASES, make_bad_dataset,
                                       make_bad_reports_jsonl, make_bad_tumor_dataset,
                                       make_dicom_control_dataset)
from ctglip.utils.cli import run_cli
from ctglip.utils.errors import DataError

sys.path.insert(0, REPO)
from tools import dataset_stats, preprocess, structure_reports, train  # noqa: E402
from tools import test as test_tool  # noqa: E402

TINY = osp.join(REPO, 'configs', 'tests', 'tiny_ctglip.py')
KINDS = list(BAD_INPUT_KINDS)
REQUIRED = {'truncated_nifti', 'not_nifti', 'image_2d', 'image_4d', 'nan_voxels',
            'mask_shape_mismatch', 'mask_affine_mismatch', 'mask_unknown_labels', 'mask_empty',
            'empty_report', 'non_utf8_report', 'missing_field', 'duplicate_case_id',
            'patient_in_two_splits', 'dicom_unreadable_slice', 'dicom_mixed_series'}
# Read in a DataLoader worker process (torch re-raises the error in the main process). The
# train tool runs these with num_workers=1 (a few; each worker costs seconds to shut down).
WORKER_KINDS = {'truncated_nifti', 'mask_empty', 'mask_affine_mismatch', 'nan_voxels',
                'dicom_unreadable_slice'}
TRAIN_WORKER_KINDS = {'truncated_nifti', 'dicom_unreadable_slice'}
# tools/train.py as a real subprocess: a manifest line, a voxel fault read in a worker, DICOM.
SUBPROCESS_KINDS = [('missing_field', 0), ('mask_unknown_labels', 1), ('dicom_mixed_series', 1)]


@pytest.fixture(scope='module')
def cfg():
    from mmengine.config import Config
    return Config.fromfile(TINY)


@pytest.fixture
def fast_config_dump(monkeypatch):
    """The Runner formats the config with yapf (seconds per run); plain text is enough here."""
    import mmengine.config.config as config_module
    monkeypatch.setattr(config_module, 'FormatCode', lambda text, **kwargs: (text, None))


@pytest.fixture(scope='session')
def corpus(tiny_data, tmp_path_factory):
    """``corpus(kind)``: the bad dataset of that kind, built once per session (read only)."""
    root, made = tmp_path_factory.mktemp('bad_inputs'), {}

    def get(kind):
        if kind not in made:
            made[kind] = make_bad_dataset(kind, str(root / kind), base=tiny_data)
        return made[kind]
    return get


def assert_clear(message, kind, root):
    """One line naming the case or manifest line, the broken file and a fix."""
    spec = BAD_INPUT_KINDS[kind] if kind in BAD_INPUT_KINDS else BAD_TUMOR_KINDS[kind]
    assert spec.message in message, message
    assert f"case '{BROKEN_CASE}'" in message or re.search(r'line \d+', message), message
    assert osp.join(root, spec.file) in message, message
    assert 'Fix:' in message, message
    assert '\n' not in message and 'Traceback' not in message and 'Caught' not in message


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith('error:')]


def assert_no_checkpoint(work):
    written = [p for p in work.rglob('*') if p.suffix == '.pth' or p.name == 'last_checkpoint']
    assert not written, written


def train_argv(root, work, bert, workers=0, extra=()):
    return [TINY, '--work-dir', str(work), '--data-root', root, '--cfg-options',
            f'model.text_encoder.model_path={bert}', 'train_cfg.max_iters=1',
            # one batch holds all 4 train studies, so the broken one is always read
            'train_dataloader.batch_size=4', f'train_dataloader.num_workers={workers}',
            f'experiment_name={osp.basename(str(work))}', *extra]


def case_ids(ds):
    return [ds.get_data_info(i)['case_id'] for i in range(len(ds))]


# -- the corpus itself --------------------------------------------------------------------------
def test_corpus_covers_the_required_kinds():
    assert len(BAD_INPUT_KINDS) >= 15 and REQUIRED <= set(BAD_INPUT_KINDS)
    assert {k.level for k in BAD_INPUT_KINDS.values()} == {'manifest', 'header', 'voxels',
                                                           'dataset'}
    assert set(BAD_REPORT_KINDS) == {'empty_report', 'non_utf8_report', 'missing_field',
                                     'duplicate_case_id'}
    with pytest.raises(KeyError, match='known:'):
        make_bad_dataset('nope', 'unused')


def test_dicom_control_loads_like_the_nifti_study(tiny_data, tmp_path, cfg):
    """The DICOM kinds break one thing only: the unbroken series loads like its NIfTI file."""
    import torch

    from ctglip.datasets import CTReportDataset
    root = make_dicom_control_dataset(str(tmp_path / 'dicom'), base=tiny_data)
    dicom = CTReportDataset(root, split='train', pipeline=cfg.test_pipeline, test_mode=True)[0]
    nifti = CTReportDataset(tiny_data, split='train', pipeline=cfg.test_pipeline,
                            test_mode=True)[0]
    assert dicom['data_samples'].case_id == BROKEN_CASE
    assert torch.equal(dicom['inputs'], nifti['inputs'])
    assert torch.equal(dicom['data_samples'].organ_label, nifti['data_samples'].organ_label)


# -- dataset loader -----------------------------------------------------------------------------
@pytest.mark.parametrize('kind', KINDS)
def test_dataset_refuses_with_a_clear_error(kind, corpus, cfg):
    from ctglip.datasets import CTReportDataset
    root = corpus(kind)
    with pytest.raises(DataError) as e:
        ds = CTReportDataset(root, split=None, pipeline=cfg.test_pipeline, test_mode=True)
        for i in range(len(ds)):
            ds[i]
    assert_clear(str(e.value), kind, root)


@pytest.mark.parametrize('kind', KINDS)
def test_dataset_skip_invalid_counts_and_keeps_the_rest(kind, corpus, cfg):
    from ctglip.datasets import CTReportDataset
    root, level = corpus(kind), BAD_INPUT_KINDS[kind].level
    if level == 'dataset':  # no study is the right one to drop: always an error
        with pytest.raises(DataError, match=re.escape(BAD_INPUT_KINDS[kind].message)):
            CTReportDataset(root, split=None, pipeline=[], skip_invalid=True)
        return
    if level in ('manifest', 'header'):  # skipped when the dataset is built
        ds = CTReportDataset(root, split=None, pipeline=cfg.test_pipeline, skip_invalid=True,
                             test_mode=True)
        assert len(ds) == NUM_CASES - 1 and BROKEN_CASE not in case_ids(ds)
        assert sum(ds.skipped.values()) == 1, ds.skipped
        assert [ds[i]['data_samples'].case_id for i in range(len(ds))] == case_ids(ds)
        return
    # voxels: found when the study is read; training skips it, validation and test stop.
    ds = CTReportDataset(root, split=None, pipeline=cfg.train_pipeline, skip_invalid=True)
    assert len(ds) == NUM_CASES and not ds.skipped
    loaded = [ds[i]['data_samples'].case_id for i in range(len(ds))]
    assert BROKEN_CASE not in loaded and len(loaded) == NUM_CASES
    assert set(ds.skipped) == {'unreadable study'} and ds.skipped['unreadable study'] >= 1
    test_ds = CTReportDataset(root, split=None, pipeline=cfg.test_pipeline, skip_invalid=True,
                              test_mode=True)
    with pytest.raises(DataError, match=re.escape(BAD_INPUT_KINDS[kind].message)):
        test_ds[case_ids(test_ds).index(BROKEN_CASE)]


@pytest.mark.parametrize('kind', sorted(WORKER_KINDS))
def test_dataloader_worker_error_keeps_its_message(kind, corpus, cfg):
    """torch re-raises a worker's DataError as "Caught DataError in DataLoader worker process
    0. Original Traceback ..."; the error keeps its own one-line message."""
    from torch.utils.data import DataLoader

    from ctglip.datasets import CTReportDataset
    root = corpus(kind)
    ds = CTReportDataset(root, split='train', pipeline=cfg.test_pipeline, test_mode=True)
    error = first_error(DataLoader(ds, batch_size=4, num_workers=1, collate_fn=list))
    assert isinstance(error, DataError), error
    assert_clear(str(error), kind, root)
    assert error.worker == 'in DataLoader worker process 0'
    assert 'Traceback' in error.worker_traceback


def first_error(loader):
    """The error of iterating ``loader``, its traceback dropped so that the loader's worker is
    shut down at once (kept in a reference cycle, it takes seconds to stop)."""
    try:
        for _ in loader:
            pass
    except Exception as e:  # noqa: BLE001
        return e.with_traceback(None)


def test_run_cli_unwraps_worker_errors_torch_could_not_rebuild(capsys):
    """torch re-raises a worker error whose class takes other arguments as RuntimeError."""
    message = ("Caught InvalidLine in DataLoader worker process 0.\nOriginal Traceback (most "
               'recent call last):\n  File "x.py", line 1, in f\n    raise e\n'
               'tools.structure_reports.InvalidLine: in.jsonl line 2: bad. Fix: do.\n')

    def wrapped(argv):
        raise RuntimeError(message)

    def other(argv):
        raise RuntimeError(message.replace('tools.structure_reports.InvalidLine', 'Foo'))

    assert run_cli(wrapped) == 2
    assert capsys.readouterr().err == 'error: in.jsonl line 2: bad. Fix: do.\n'
    with pytest.raises(RuntimeError):
        run_cli(other)


# -- tools/train.py -----------------------------------------------------------------------------
@pytest.mark.parametrize('kind', KINDS)
def test_train_tool_one_line_error_no_checkpoint(kind, corpus, tiny_bert, tmp_path, capsys,
                                                 fast_config_dump):
    root = corpus(kind)
    workers = 1 if kind in TRAIN_WORKER_KINDS else 0
    code = run_cli(train.main, train_argv(root, tmp_path / f'w_{kind}', tiny_bert, workers))
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert 'Traceback' not in err
    assert_no_checkpoint(tmp_path)


def test_train_tool_trains_on_the_valid_base(tiny_data, tiny_bert, tmp_path, capsys,
                                             fast_config_dump):
    """The control: the same command on the unbroken dataset trains and writes a checkpoint."""
    work = tmp_path / 'w_control'
    code = run_cli(train.main, train_argv(tiny_data, work, tiny_bert))
    assert code == 0, capsys.readouterr().err[-3000:]
    assert (work / 'iter_1.pth').is_file()


# -- tools/test.py ------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def checkpoint(tiny_data, tiny_bert, tmp_path_factory):
    """A checkpoint of one iteration on the unbroken dataset (tools/test.py needs one)."""
    work = tmp_path_factory.mktemp('ckpt') / 'w'
    assert run_cli(train.main, train_argv(tiny_data, work, tiny_bert)) == 0
    return str(work / 'iter_1.pth')


@pytest.mark.parametrize('kind', KINDS)
def test_test_tool_one_line_error_no_metrics(kind, corpus, checkpoint, tiny_bert, tmp_path,
                                             capsys, fast_config_dump):
    """tools/test.py evaluates every study (split=None), so it reads the broken one."""
    root = corpus(kind)
    out = tmp_path / 'metrics.json'
    argv = [TINY, checkpoint, '--work-dir', str(tmp_path / 'w'), '--data-root', root,
            '--out-metrics', str(out), '--no-val-calibration', '--cfg-options',
            f'model.text_encoder.model_path={tiny_bert}', 'test_dataloader.dataset.split=None',
            f'experiment_name=test_{kind}']
    code = run_cli(test_tool.main, argv)
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert not out.exists()


@pytest.mark.parametrize('kind, workers', [('mask_affine_mismatch', 0), ('nan_voxels', 1)])
def test_train_tool_skip_invalid_trains_without_the_study(kind, workers, corpus, tiny_bert,
                                                          tmp_path, capsys, fast_config_dump):
    root = corpus(kind)
    work = tmp_path / f'w_skip_{kind}'
    code = run_cli(train.main, train_argv(root, work, tiny_bert, workers,
                                          ['train_dataloader.dataset.skip_invalid=True']))
    assert code == 0, capsys.readouterr().err[-3000:]
    assert (work / 'iter_1.pth').is_file()


@pytest.mark.parametrize('kind, workers', SUBPROCESS_KINDS)
def test_train_tool_subprocess(kind, workers, corpus, tiny_bert, tmp_path):
    root = corpus(kind)
    proc = subprocess.run([sys.executable, 'tools/train.py']
                          + train_argv(root, tmp_path / f'w_{kind}', tiny_bert, workers),
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert 'Traceback' not in proc.stderr
    assert_no_checkpoint(tmp_path)


# -- tools/structure_reports.py -----------------------------------------------------------------
@pytest.mark.parametrize('kind', sorted(BAD_REPORT_KINDS))
def test_structure_reports_one_line_error_or_counted_skip(kind, tmp_path, capsys):
    src = make_bad_reports_jsonl(kind, str(tmp_path / 'in.jsonl'))
    out = tmp_path / 'out' / 'structured.jsonl'
    assert run_cli(structure_reports.main, [src, '--out', str(out)]) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and 'Traceback' not in err, err
    message = lines[0]
    assert BAD_REPORT_KINDS[kind].message in message and f'{src} line 2' in message, message
    assert 'Fix:' in message
    assert not [p for p in tmp_path.rglob('*') if p.is_file() and p.name != 'in.jsonl']

    assert run_cli(structure_reports.main, [src, '--out', str(out), '--skip-invalid']) == 0
    assert 'skipped 1 invalid line' in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text(encoding='utf-8').splitlines()]
    assert [r['case_id'] for r in rows] == ['r0', 'r2', 'r3']


def test_structure_reports_subprocess(tmp_path):
    src = make_bad_reports_jsonl('non_utf8_report', str(tmp_path / 'in.jsonl'))
    out = tmp_path / 'structured.jsonl'
    proc = subprocess.run([sys.executable, 'tools/structure_reports.py', src, '--out', str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = error_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and 'Traceback' not in proc.stderr
    assert 'not valid UTF-8' in lines[0] and not out.exists()


# -- tools/preprocess.py ------------------------------------------------------------------------
CACHED_TINY = f"""
_base_ = [{TINY!r}]
keys = ['image', 'organ_label', 'tumor_mask']
load = [dict(type='CachedPreprocess', cache_dir='.cache/preprocessed', transforms=[
    dict(type='LoadCTStudy', organ_vocab='totalseg_v1'),
    dict(type='Spacingd', keys=keys, pixdim=(4.0, 4.0, 4.0),
         mode=('bilinear', 'nearest', 'nearest'), allow_missing_keys=True)])]
pipeline = load + [dict(type='CenterPadCrop', spatial_size=(32, 32, 32)),
                   dict(type='PackCTInputs')]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = dict(dataset=dict(pipeline=pipeline))
"""


@pytest.fixture(scope='module')
def cached_tiny(tmp_path_factory):
    """The tiny config with its deterministic head cached (what tools/preprocess.py fills)."""
    path = tmp_path_factory.mktemp('cfg') / 'cached_tiny.py'
    path.write_text(CACHED_TINY)
    return str(path)


def cache_entries(root):
    return sorted(p.name for p in (Path(root) / '.cache').rglob('*') if p.is_file())


@pytest.mark.parametrize('kind', KINDS)
def test_preprocess_tool_one_line_error_keeps_finished_entries(kind, corpus, cached_tiny, tmp_path,
                                                               capsys):
    """The cache is filled study by study; a broken study stops it with one clear line, and
    the entries already written stay complete (no temp files, no entry of the broken study)."""
    root = str(tmp_path / 'data')
    shutil.copytree(corpus(kind), root)
    code = run_cli(preprocess.main, [cached_tiny, '--data-root', root, '--workers', '0'])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert 'Traceback' not in err
    entries = cache_entries(root)
    assert not [e for e in entries if 'tmp' in e], entries
    assert not [e for e in entries if BROKEN_CASE in e], entries


def test_preprocess_tool_fills_the_cache_of_the_valid_base(tiny_data, cached_tiny, tmp_path,
                                                           capsys):
    root = str(tmp_path / 'data')
    shutil.copytree(tiny_data, root)
    assert run_cli(preprocess.main, [cached_tiny, '--data-root', root, '--workers', '0']) == 0
    assert f'preprocessed {NUM_CASES} studies' in capsys.readouterr().out
    assert len(cache_entries(root)) >= NUM_CASES


# -- tools/dataset_stats.py ---------------------------------------------------------------------
# It reads the manifest, the headers, the masks and the reports, never the image voxels.
STATS_READS_NO_VOXELS = {'truncated_nifti', 'nan_voxels'}


@pytest.mark.parametrize('kind', KINDS)
def test_dataset_stats_one_line_error_no_output(kind, corpus, tmp_path, capsys):
    root, out = corpus(kind), tmp_path / 'stats'
    code = run_cli(dataset_stats.main, [root, '--out', str(out), '--splits', 'train', 'val',
                                        'test'])
    err = capsys.readouterr().err
    if kind in STATS_READS_NO_VOXELS:
        assert code == 0, err[-3000:]
        assert (out / 'dataset_stats.json').is_file()
        return
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert 'Traceback' not in err
    assert not out.exists()


# -- tumor fine-tuning: kinds only a fine-tune split refuses ------------------------------------
FINETUNE = osp.join(REPO, 'configs', 'tests', 'tiny_finetune_scratch.py')
TUMOR_KINDS = list(BAD_TUMOR_KINDS)


@pytest.fixture(scope='session')
def tumor_corpus(tmp_path_factory):
    """``tumor_corpus(kind)``: the bad tumor dataset of that kind, built once per session."""
    from ctglip.testing.tumor_data import make_tiny_tumor_dataset
    root = tmp_path_factory.mktemp('bad_tumor_inputs')
    base = make_tiny_tumor_dataset(str(root / 'base'), masks_for_tumor_free=True)
    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = make_bad_tumor_dataset(kind, str(root / kind), base=base)
        return made[kind]
    return get


@pytest.fixture(scope='module')
def finetune_cfg():
    from mmengine.config import Config
    return Config.fromfile(FINETUNE)


def test_tumor_corpus_kinds():
    assert set(BAD_TUMOR_KINDS) == {'tumor_mask_missing', 'tumor_mask_shape_mismatch',
                                    'tumor_mask_unknown_labels'}
    with pytest.raises(KeyError, match='known:'):
        make_bad_tumor_dataset('nope', 'unused')


@pytest.mark.parametrize('kind', TUMOR_KINDS)
def test_finetune_dataset_refuses_tumor_kinds(kind, tumor_corpus, finetune_cfg):
    from ctglip.datasets import TumorManifestDataset
    root = tumor_corpus(kind)
    with pytest.raises(DataError) as e:
        ds = TumorManifestDataset(root, split=None, pipeline=finetune_cfg.test_pipeline,
                                  test_mode=True)
        for i in range(len(ds)):
            ds[i]
    assert_clear(str(e.value), kind, root)


@pytest.mark.parametrize('kind', TUMOR_KINDS)
def test_finetune_dataset_skip_invalid_counts_tumor_kinds(kind, tumor_corpus, finetune_cfg):
    from ctglip.datasets import TumorManifestDataset
    root = tumor_corpus(kind)
    if BAD_TUMOR_KINDS[kind].level in ('manifest', 'header'):
        ds = TumorManifestDataset(root, split=None, pipeline=finetune_cfg.test_pipeline,
                                  skip_invalid=True, test_mode=True)
        assert len(ds) == NUM_CASES - 1 and BROKEN_CASE not in case_ids(ds)
        assert sum(ds.skipped.values()) == 1, ds.skipped
        return
    ds = TumorManifestDataset(root, split=None, pipeline=finetune_cfg.train_pipeline,
                              skip_invalid=True)
    loaded = [ds[i]['data_samples'].case_id for i in range(len(ds))]
    assert BROKEN_CASE not in loaded and ds.skipped['unreadable study'] >= 1


@pytest.mark.parametrize('kind', TUMOR_KINDS)
def test_train_tool_one_line_error_on_tumor_kinds(kind, tumor_corpus, tmp_path, capsys,
                                                  fast_config_dump):
    root = tumor_corpus(kind)
    argv = [FINETUNE, '--work-dir', str(tmp_path / f'w_{kind}'), '--data-root', root,
            '--cfg-options', 'train_cfg.max_iters=1', 'train_dataloader.batch_size=4',
            f'experiment_name=tumor_{kind}'] + [
                # the tiny config, like the phantom's, declares studies without mask tumor free
                f'{loader}_dataloader.dataset.missing_tumor_mask=error'
                for loader in ('train', 'val', 'test')]
    code = run_cli(train.main, argv)
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert_clear(lines[0][len('error: '):], kind, root)
    assert 'Traceback' not in err
    assert_no_checkpoint(tmp_path)


def test_tumor_kinds_are_no_faults_for_pretraining(tumor_corpus, cfg):
    """Pretraining reads a tumor mask only where the manifest names one."""
    from ctglip.datasets import CTReportDataset
    ds = CTReportDataset(tumor_corpus('tumor_mask_missing'), split=None,
                         pipeline=cfg.test_pipeline, test_mode=True)
    assert BROKEN_CASE in [ds[i]['data_samples'].case_id for i in range(len(ds))]
