"""tools/structure_reports.py: end to end (subprocess) and every bad-input case (in process)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'structure_reports.py')
SECRET = 'ZEBRA-7731 patient phrase'   # report text that must never reach the log


def _load_tool():
    spec = importlib.util.spec_from_file_location('structure_reports_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path, lines):
    data = b''.join(line if isinstance(line, bytes) else (line + '\n').encode('utf-8')
                    for line in lines)
    path.write_bytes(data)
    return str(path)


def _row(case_id, report):
    return json.dumps(dict(case_id=case_id, report=report))


GOOD = [
    _row('case_1', f'FINDINGS: Cholelithiasis. Both kidneys are normal. {SECRET}. '
                   'IMPRESSION: 1. Cholelithiasis.'),
    _row('case_2', 'Liver: 2 cm simple cyst in segment VII. Lungs: 5 mm nodule in the RLL.'),
    '',
    _row('case_3', 'No acute findings.'),
]


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_end_to_end(tmp_path):
    src = _write(tmp_path / 'in.jsonl', GOOD)
    out = tmp_path / 'sub' / 'out.jsonl'
    proc = _run(src, '--out', str(out))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding='utf-8').splitlines()]
    assert [r['case_id'] for r in rows] == ['case_1', 'case_2', 'case_3']
    assert all(list(r) == ['case_id', 'findings', 'status', 'abnormalities'] for r in rows)
    assert rows[0]['status'] == {'kidney_right': 'normal', 'kidney_left': 'normal',
                                 'gallbladder': 'abnormal'}
    assert rows[0]['findings']['gallbladder'] == ['Cholelithiasis.']
    assert rows[1]['abnormalities'] == {'liver': ['liver cyst'],
                                        'lung_lower_lobe_right': ['lung nodule']}
    assert rows[2] == dict(case_id='case_3', findings={}, status={}, abnormalities={})
    assert 'structured 3 reports' in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert os.listdir(out.parent) == ['out.jsonl']   # no temporary file left


def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path):
    src = _write(tmp_path / 'in.jsonl', [GOOD[0], '{"case_id": "case_2", "report": ' +
                                         json.dumps(SECRET)])   # unterminated object
    out = tmp_path / 'out.jsonl'
    proc = _run(src, '--out', str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('error: ') and f'{src} line 2: invalid JSON' in lines[0]
    assert 'Fix:' in lines[0]
    assert SECRET not in proc.stdout + proc.stderr
    assert os.listdir(tmp_path) == ['in.jsonl']


def test_skip_invalid_counts_and_skips(tmp_path):
    src = _write(tmp_path / 'in.jsonl', GOOD + [
        '{not json', _row('case_1', 'Duplicate.'), json.dumps(dict(case_id='case_9')),
        b'{"case_id": "case_10", "report": "caf\xe9"}\n'])
    out = tmp_path / 'out.jsonl'
    proc = _run(src, '--out', str(out), '--skip-invalid')
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)['case_id'] for line in out.read_text().splitlines()] == [
        'case_1', 'case_2', 'case_3']
    summary = [line for line in proc.stderr.splitlines() if line.startswith('skipped')]
    assert summary and 'skipped 4 invalid lines' in summary[0]
    for reason in ('invalid JSON: 1', 'duplicate case_id: 1', 'missing report: 1',
                   'not UTF-8: 1'):
        assert reason in summary[0]
    assert 'lines 5, 6, 7, 8' in summary[0]


# -- every bad-input case, in process ----------------------------------------------------------
@pytest.mark.parametrize('line,lineno,words', [
    ('{"case_id": "a", "report": ', 2, ['invalid JSON', 'one JSON object per line']),
    ('["a", "b"]', 2, ['expected a JSON object', 'got list']),
    (json.dumps(dict(report=SECRET)), 2, ['missing field "case_id"', 'unique']),
    (json.dumps(dict(case_id=7, report=SECRET)), 2, ['"case_id" must be a non-empty string']),
    (json.dumps(dict(case_id='b')), 2, ['missing field "report"', "case_id 'b'"]),
    (json.dumps(dict(case_id='b', report='   ')), 2, ['"report" is empty', "case_id 'b'"]),
    (json.dumps(dict(case_id='b', report=['x'])), 2, ['"report" must be a string']),
    (_row('case_1', SECRET), 2, ["duplicate case_id 'case_1' (first on line 1)"]),
    (b'{"case_id": "b", "report": "\xff\xfe"}\n', 2, ['not valid UTF-8', 'byte 0xff',
                                                    'save the file as UTF-8']),
])
def test_each_bad_line(tmp_path, capsys, line, lineno, words):
    tool = _load_tool()
    src = _write(tmp_path / 'in.jsonl', [GOOD[0], line])
    out = tmp_path / 'out.jsonl'
    out.write_text('previous run\n')   # a failed run must leave an existing output alone
    from ctglip.utils.cli import run_cli
    assert run_cli(tool.main, [src, '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: '), err
    assert f'{src} line {lineno}:' in err
    for w in words:
        assert w in err, err
    assert 'Fix:' in err
    assert SECRET not in err
    assert out.read_text() == 'previous run\n'
    assert sorted(os.listdir(tmp_path)) == ['in.jsonl', 'out.jsonl']


@pytest.mark.parametrize('args,words', [
    (['missing.jsonl'], ['missing.jsonl does not exist']),
    (['--structurer', 'NoSuchStructurer'], ['NoSuchStructurer', 'RuleBasedReportStructurer']),
    (['--empty'], ['no report lines']),
])
def test_other_failures(tmp_path, capsys, args, words):
    tool = _load_tool()
    src = _write(tmp_path / 'in.jsonl', GOOD)
    if args == ['missing.jsonl']:
        argv = [str(tmp_path / 'missing.jsonl')]
    elif args == ['--empty']:
        argv = [_write(tmp_path / 'empty.jsonl', ['', ''])]
    else:
        argv = [src] + args
    from ctglip.utils.cli import run_cli
    assert run_cli(tool.main, argv + ['--out', str(tmp_path / 'out.jsonl')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    for w in words:
        assert w in err
    assert not (tmp_path / 'out.jsonl').exists()


def test_bad_structurer_output_is_reported(tmp_path, capsys):
    from ctglip.datasets.report_parsing import BaseReportStructurer
    from ctglip.registry import REPORT_STRUCTURERS
    from ctglip.utils.cli import run_cli

    class BrokenStructurer(BaseReportStructurer):
        def structure(self, report):
            return dict(findings={}, status={'liver': 'sick'}, abnormalities={})

    REPORT_STRUCTURERS.register_module(module=BrokenStructurer, force=True)
    try:
        tool = _load_tool()
        src = _write(tmp_path / 'in.jsonl', GOOD)
        argv = [src, '--out', str(tmp_path / 'out.jsonl'), '--structurer', 'BrokenStructurer']
        assert run_cli(tool.main, argv) == 2
    finally:
        REPORT_STRUCTURERS._module_dict.pop('BrokenStructurer', None)
    err = capsys.readouterr().err
    assert "case_id 'case_1'" in err and 'normal' in err and SECRET not in err
    assert os.listdir(tmp_path) == ['in.jsonl']
