"""Structure free-text CT reports into organ-level findings.

``python tools/structure_reports.py IN.jsonl --out OUT.jsonl [--structurer NAME] [--skip-invalid]``

Reads lines ``{"case_id", "report"}`` and writes lines ``{"case_id", "findings": {organ:
[sentence]}, "status": {organ: "normal"|"abnormal"}, "abnormalities": {organ: [name]}}``
(see README). Bad input stops the run with one line naming the file, the line, the field and
the fix (exit code 2) and no output file; ``--skip-invalid`` skips such lines and reports how
many. Report text is written only to the output file, never to the log.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from ctglip.utils.cli import run_cli  # noqa: E402
from ctglip.utils.errors import DataError  # noqa: E402

EXAMPLE = '{"case_id": "case_0001", "report": "FINDINGS: ..."}'


class InvalidLine(DataError):
    """A bad input line; ``reason`` is the short kind used in the ``--skip-invalid`` summary."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Structure free-text CT reports into organ-level findings, normal/abnormal '
                    'status and abnormality names.')
    parser.add_argument('input', metavar='IN.jsonl',
                        help=f'JSON lines, one study per line: {EXAMPLE}')
    parser.add_argument('--out', required=True, metavar='OUT.jsonl',
                        help='where to write the structured reports (JSON lines)')
    parser.add_argument('--structurer', default='RuleBasedReportStructurer',
                        help='name registered in REPORT_STRUCTURERS '
                             '(default: RuleBasedReportStructurer)')
    parser.add_argument('--skip-invalid', action='store_true',
                        help='skip bad lines (and count them) instead of stopping at the first')
    parser.add_argument('--abnormality-vocab', default=None, metavar='NAME|FILE',
                        help='abnormality vocabulary of the names: default (16 findings), '
                             'ct_rate (18 chest findings) or a JSON file')
    parser.add_argument('--organ-vocab', default='totalseg_v1', metavar='SCHEME|FILE',
                        help='organ names of the output: totalseg_v1 (default), totalseg_v2 or '
                             'a JSON class map')
    return parser.parse_args(argv)


def _check_line(path, lineno, raw, seen):
    """``(case_id, report)`` of one input line; raises InvalidLine naming the line and the fix."""
    where = f'{path} line {lineno}'
    try:
        line = raw.decode('utf-8-sig' if lineno == 1 else 'utf-8')
    except UnicodeDecodeError as e:
        raise InvalidLine('not UTF-8', f'{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} '
                          f'at column {e.start + 1}). Fix: save the file as UTF-8.') from None
    try:
        row = json.loads(line)
    except ValueError as e:
        # the JSON error names a position, never the text itself
        raise InvalidLine('invalid JSON', f'{where}: invalid JSON ({e.msg} at column {e.colno}). '
                          f'Fix: write one JSON object per line, e.g. {EXAMPLE}.') from None
    if not isinstance(row, dict):
        raise InvalidLine('not an object', f'{where}: expected a JSON object, got '
                          f'{type(row).__name__}. Fix: write one object per line, e.g. {EXAMPLE}.')
    case_id = row.get('case_id')
    if case_id is None:
        raise InvalidLine('missing case_id', f'{where}: missing field "case_id". Fix: give every '
                          'line a unique "case_id" string.')
    if not isinstance(case_id, str) or not case_id.strip():
        raise InvalidLine('bad case_id', f'{where}: field "case_id" must be a non-empty string, '
                          f'got {type(case_id).__name__}. Fix: write it as a string, e.g. '
                          '"case_0001".')
    if case_id in seen:
        raise InvalidLine('duplicate case_id', f'{where}: duplicate case_id {case_id!r} (first on '
                          f'line {seen[case_id]}). Fix: give every study a unique case_id.')
    if 'report' not in row:
        raise InvalidLine('missing report', f'{where}: missing field "report" (case_id '
                          f'{case_id!r}). Fix: add the free-text report as "report".')
    report = row['report']
    if not isinstance(report, str):
        raise InvalidLine('bad report', f'{where}: field "report" must be a string, got '
                          f'{type(report).__name__} (case_id {case_id!r}). Fix: put the report '
                          'text in one string.')
    if not report.strip():
        raise InvalidLine('empty report', f'{where}: field "report" is empty (case_id '
                          f'{case_id!r}). Fix: give the report text, or leave the study out.')
    return case_id, report


def read_reports(path, skip_invalid=False):
    """Read and check every input line before any structuring starts.

    Returns:
        tuple: ``(rows, skipped)`` with rows ``[(case_id, report)]`` and skipped a list of
        ``(lineno, reason, message)``.

    Raises:
        DataError: the file is missing, or (unless ``skip_invalid``) on the first bad line.
    """
    if not osp.isfile(path):
        raise DataError(f'input file {path} does not exist. Fix: give a JSON-lines file with '
                        f'lines such as {EXAMPLE}.')
    rows, skipped, seen = [], [], {}
    with open(path, 'rb') as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                case_id, report = _check_line(path, lineno, raw.rstrip(b'\r\n'), seen)
            except InvalidLine as e:
                if not skip_invalid:
                    raise
                skipped.append((lineno, e.reason, str(e)))
                continue
            seen[case_id] = lineno
            rows.append((case_id, report))
    return rows, skipped


def _progress(iterable, total):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency; without it, run quietly
        return iterable
    return tqdm(iterable, total=total, desc='structuring reports', unit='report',
                file=sys.stderr, disable=None)


def main(argv=None):
    args = parse_args(argv)
    from ctglip.datasets.report_parsing import build_report_structurer, check_structured

    from ctglip.registry import REPORT_STRUCTURERS
    from ctglip.vocabularies.config import takes_abnormality_vocab
    cfg = dict(type=args.structurer)
    if args.structurer in REPORT_STRUCTURERS:  # else the build names the registered ones
        if takes_abnormality_vocab(REPORT_STRUCTURERS.get(args.structurer)):
            cfg.update(abnormality_vocab=args.abnormality_vocab, vocab=args.organ_vocab)
        elif args.abnormality_vocab or args.organ_vocab != 'totalseg_v1':
            raise DataError(f'--abnormality-vocab / --organ-vocab: structurer '
                            f'{args.structurer} takes no vocabularies. Fix: leave the flags out.')
    structurer = build_report_structurer(cfg)
    rows, skipped = read_reports(args.input, args.skip_invalid)
    if not rows:
        raise DataError(f'{args.input}: no {"valid " if skipped else ""}report lines to structure'
                        f'{f" ({len(skipped)} invalid skipped)" if skipped else ""}. Fix: one '
                        f'JSON object per line, e.g. {EXAMPLE}.')
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(args.out)}.', suffix='.tmp', dir=out_dir)
    organs = Counter()
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            for case_id, report in _progress(rows, len(rows)):
                try:
                    result = check_structured(structurer.structure(report), args.organ_vocab,
                                              args.abnormality_vocab)
                except ValueError as e:
                    raise DataError(f'{args.input}: structurer {args.structurer} returned a bad '
                                    f'result for case_id {case_id!r}: {e}') from None
                f.write(json.dumps(dict(case_id=case_id, findings=result['findings'],
                                        status=result['status'],
                                        abnormalities=result['abnormalities']),
                                   ensure_ascii=False) + '\n')
                organs['organs'] += len(result['status'])
                organs['abnormal'] += sum(s == 'abnormal' for s in result['status'].values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)

    n = len(rows)
    print(f'structured {n} report{"s" * (n != 1)} with {args.structurer} -> {args.out} '
          f'({organs["organs"] / max(n, 1):.1f} organs per report, '
          f'{organs["abnormal"] / max(n, 1):.1f} abnormal)', file=sys.stderr)
    if skipped:
        reasons = Counter(reason for _, reason, _ in skipped)
        summary = ', '.join(f'{k}: {v}' for k, v in reasons.most_common())
        print(f'skipped {len(skipped)} invalid line{"s" * (len(skipped) != 1)} of {args.input} '
              f'({summary}); lines {", ".join(str(n) for n, _, _ in skipped[:20])}'
              f'{", ..." if len(skipped) > 20 else ""}', file=sys.stderr)


if __name__ == '__main__':
    sys.exit(run_cli(main))
