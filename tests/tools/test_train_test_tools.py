"""tools/train.py and tools/test.py end to end on the tiny config, and their one-line errors."""
import json
import subprocess
import sys

import pytest

from conftest import REPO

TINY = 'configs/tests/tiny_ctglip.py'


def run_tool(args, **kwargs):
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope='module')
def trained(tiny_bert, tiny_data, tmp_path_factory):
    """Train 4 iterations (validating at 2 and 4), then resume to 6."""
    work = tmp_path_factory.mktemp('train') / 'work'
    common = ['--work-dir', str(work), '--data-root', tiny_data, '--cfg-options',
              f'model.text_encoder.model_path={tiny_bert}']
    first = run_tool(['tools/train.py', TINY] + common)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_tool(['tools/train.py', TINY, '--resume'] + common
                       + ['train_cfg.max_iters=6'])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return work, first.stdout + first.stderr, resumed.stdout + resumed.stderr, common


def test_train_writes_checkpoints_and_validates(trained):
    work, log, _, _ = trained
    assert (work / 'iter_4.pth').is_file()  # iter_2 was rotated out (max_keep_ckpts=2)
    assert (work / 'last_checkpoint').read_text().strip().endswith('iter_6.pth')
    assert 'zeroshot/organ_top1' in log and 'zeroshot/abn_auc' in log
    assert 'temperature' in log and 'loss_diagnosis' in log
    # TensorBoard events are written
    assert list(work.rglob('events.out.tfevents*'))


def test_resume_continues_from_the_last_checkpoint(trained):
    work, _, log, _ = trained
    assert 'resumed' in log.lower() and 'iter_4.pth' in log
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    assert (work / 'iter_6.pth').is_file()


def plant_stale_thresholds(work):
    """Thresholds files of an 'earlier run' with absurd values, where older code read them."""
    from ctglip.datasets.organs import all_abnormalities
    stale = dict(rule='nearest_01', num_studies=999,
                 thresholds={a: STALE_THRESHOLD for a in all_abnormalities()})
    for folder in ('val_calibration', 'test_results'):
        (work / folder).mkdir(parents=True, exist_ok=True)
        (work / folder / 'abn_thresholds.json').write_text(json.dumps(stale))
    (work / 'val_calibration' / 'val_metrics.json').write_text('{"zeroshot/abn_auc": 0.123}')


STALE_THRESHOLD = 123.0


def test_test_tool_writes_metrics_json(trained, tmp_path):
    work, _, _, common = trained
    plant_stale_thresholds(work)
    out = tmp_path / 'metrics.json'
    proc = run_tool(['tools/test.py', TINY, str(work / 'iter_6.pth'), '--out-metrics', str(out)]
                    + common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(out.read_text())
    for key in ('zeroshot/organ_top1', 'zeroshot/organ_top5', 'zeroshot/abn_auc',
                'zeroshot/abn_f1', 'zeroshot/abn_ppv', 'zeroshot/abn_sensitivity'):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0
    # thresholds were chosen on the validation split of this run and applied to test
    assert metrics['zeroshot/abn_thresholds_self_calibrated'] == 0.0
    assert metrics['zeroshot/abn_thresholds_val_calibrated'] == 1.0
    val = json.loads((work / 'val_calibration' / 'val_metrics.json').read_text())
    assert 0.0 <= val['zeroshot/organ_top1'] <= 1.0 and 'zeroshot/abn_auc' in val
    assert val['zeroshot/abn_auc'] != 0.123
    applied = {k: v for k, v in metrics.items() if k.startswith('zeroshot/abn_threshold/')}
    assert applied and all(v != STALE_THRESHOLD for v in applied.values())
    assert applied == {k: val[k] for k in applied}  # the validation thresholds, unchanged
    record = json.loads((work / 'val_calibration' / 'abn_thresholds.json').read_text())
    assert record['num_studies'] == 2 and STALE_THRESHOLD not in record['thresholds'].values()
    assert not (work / 'test_results' / 'abn_thresholds.json').exists()
    # the run record: the device the model ran on and when
    assert metrics['_run']['device'].endswith('cores)') or 'GPU' in metrics['_run']['device']
    assert metrics['_run']['date'][:4].isdigit()
    assert metrics['_run']['checkpoint'] == str(work / 'iter_6.pth')


def test_test_tool_never_falls_back_to_a_stale_thresholds_file(trained, tmp_path):
    """A validation split that yields no thresholds is an error, not the file of a past run."""
    work, _, _, common = trained
    plant_stale_thresholds(work)
    out = tmp_path / 'metrics.json'
    proc = run_tool(['tools/test.py', TINY, str(work / 'iter_6.pth'), '--out-metrics', str(out)]
                    + common + ['val_dataloader.dataset.max_cases=1',
                                'val_evaluator.1.strict=False'])
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'validation split gave no abnormality thresholds' in errors[0]
    assert '--no-val-calibration' in errors[0]
    assert not out.exists()
    assert not (work / 'val_calibration' / 'abn_thresholds.json').exists()


def test_test_tool_without_val_calibration_self_calibrates_and_says_so(trained, tmp_path):
    work, _, _, common = trained
    plant_stale_thresholds(work)
    out = tmp_path / 'metrics.json'
    proc = run_tool(['tools/test.py', TINY, str(work / 'iter_6.pth'), '--out-metrics', str(out),
                     '--no-val-calibration'] + common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'chosen on the test split itself' in proc.stdout + proc.stderr
    metrics = json.loads(out.read_text())
    assert metrics['zeroshot/abn_thresholds_self_calibrated'] == 1.0
    assert metrics['zeroshot/abn_thresholds_val_calibrated'] == 0.0
    applied = {k: v for k, v in metrics.items() if k.startswith('zeroshot/abn_threshold/')}
    assert applied and all(v != STALE_THRESHOLD for v in applied.values())
    written = json.loads((work / 'test_results' / 'abn_thresholds.json').read_text())
    assert written['num_studies'] == 2


@pytest.mark.parametrize('extra, message', [
    (['--cfg-options', 'model.pooler.type=OrganMaskPoler'], "did you mean 'OrganMaskPooler'"),
    (['--cfg-options', 'model.backbone.arch=huge'], "arch='huge' is not a preset"),
    (['--cfg-options', 'model.pooler.min_voxel=3'], 'unexpected keyword argument'),
])
def test_wrong_config_gives_one_line_error(tiny_bert, tiny_data, tmp_path, extra, message):
    proc = run_tool(['tools/train.py', TINY, '--work-dir', str(tmp_path), '--data-root',
                     tiny_data] + extra)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr


def test_missing_config_and_data_root(tmp_path):
    from ctglip.utils.cli import run_cli
    sys.path.insert(0, REPO)
    from tools import train  # noqa: E402
    assert run_cli(train.main, ['configs/nope.py']) == 2
    assert run_cli(train.main, [TINY, '--data-root', str(tmp_path)]) == 2


def test_missing_checkpoint(tiny_data, capsys):
    from ctglip.utils.cli import run_cli
    sys.path.insert(0, REPO)
    from tools import test as test_tool  # noqa: E402
    assert run_cli(test_tool.main, [TINY, 'nope.pth', '--data-root', tiny_data]) == 2
    assert 'checkpoint nope.pth does not exist' in capsys.readouterr().err


def test_no_report_text_in_logs_tensorboard_or_checkpoints(trained):
    """Privacy: report sentences never leave the dataset folder by default."""
    from ctglip.testing.data import ABNORMAL, NORMAL
    work = trained[0]
    sentences = [s for _, s in ABNORMAL.values()] + list(NORMAL.values())
    files = [p for p in work.rglob('*') if p.is_file()]
    assert any(p.suffix == '.pth' for p in files) and any('tfevents' in p.name for p in files)
    for path in files:
        blob = path.read_bytes()
        for sentence in sentences:
            assert sentence.encode() not in blob, f'report text found in {path}'
    assert sentences[0] not in trained[1] and sentences[0] not in trained[2]  # console
