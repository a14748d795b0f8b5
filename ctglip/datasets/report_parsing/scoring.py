"""Accuracy of a report structurer on hand-labelled sentences and reports.

The labelled file is JSON lines; a ``sentence`` row holds the expected ``organs`` and, per
organ, ``status`` and ``abnormalities`` (organs without abnormality names may be left out);
a ``report`` row holds ``status`` and ``abnormalities`` for the whole report::

    {"id": "s001", "kind": "sentence", "text": "...", "organs": ["liver"],
     "status": {"liver": "normal"}, "abnormalities": {}}
    {"id": "r01", "kind": "report", "text": "...", "status": {...}, "abnormalities": {...}}

Structurers are scored through their public ``structure()`` only (a sentence is structured as
a one-sentence report), so a plugged-in structurer is scored the same way as the rule-based one.
"""
import json
import os.path as osp

from ctglip.utils.errors import DataError

_TEST_DATA = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'tests', 'data')
DEFAULT_DATA = osp.join(_TEST_DATA, 'report_sentences.jsonl')
# Sentences in the style of real reports, one ``category`` each (section headers, lobe
# abbreviations, hedges, resolved and unchanged findings, lung bases, several organs, negation
# scope, lesions named by their look, chest findings of the ct_rate vocabulary). Each category's
# rows alternate between ``split`` ``rules`` (read while writing rules) and ``heldout`` (never
# read for that). A row may name the ``vocabulary`` its names come from (default: ``default``).
REAL_STYLE_DATA = osp.join(_TEST_DATA, 'report_sentences_real_style.jsonl')


def load_labelled(path=DEFAULT_DATA):
    """Read a labelled file; returns ``(sentences, reports)`` lists of dicts."""
    sentences, reports = [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DataError(f'{path} line {lineno}: invalid JSON ({e})') from None
            kind = row.get('kind')
            if kind not in ('sentence', 'report') or 'text' not in row:
                raise DataError(f'{path} line {lineno}: needs "kind" ("sentence" or "report") '
                                'and "text"')
            (sentences if kind == 'sentence' else reports).append(row)
    return sentences, reports


def _prf(tp, n_pred, n_true):
    p = tp / n_pred if n_pred else 1.0
    r = tp / n_true if n_true else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _compare(expected_status, expected_abn, result):
    """Counts for one item: organs, status and abnormality agreement."""
    pred_status = result['status']
    exp, pred = set(expected_status), set(pred_status)
    both = exp & pred
    status_ok = sum(pred_status[o] == expected_status[o] for o in both)
    abn_ok = sum(set(result['abnormalities'].get(o, [])) == set(expected_abn.get(o, []))
                 for o in both)
    exp_names = {(o, n) for o, names in expected_abn.items() for n in names}
    pred_names = {(o, n) for o, names in result['abnormalities'].items() for n in names}
    return dict(exact=exp == pred, tp=len(both), n_pred=len(pred), n_true=len(exp),
                status_ok=status_ok, abn_ok=abn_ok, pairs=len(both),
                name_tp=len(exp_names & pred_names), name_pred=len(pred_names),
                name_true=len(exp_names))


def _summarise(counts):
    total = {k: sum(c[k] for c in counts) for k in counts[0]} if counts else {}
    if not counts:
        return {}
    p, r, f = _prf(total['tp'], total['n_pred'], total['n_true'])
    ap, ar, af = _prf(total['name_tp'], total['name_pred'], total['name_true'])
    pairs = total['pairs'] or 1
    return dict(n=len(counts), organ_exact=total['exact'] / len(counts), organ_precision=p,
                organ_recall=r, organ_f1=f, status_accuracy=total['status_ok'] / pairs,
                abnormality_exact=total['abn_ok'] / pairs, abnormality_precision=ap,
                abnormality_recall=ar, abnormality_f1=af)


def score_structurer(structurer, sentences, reports=()):
    """Score a structurer on labelled sentences and reports.

    Metrics (``sentence`` and ``report`` levels):
        * ``organ_exact``: share of items whose organ set is exactly right (sentences) /
          whose set of organs with a status is exactly right (reports);
        * ``organ_precision``/``organ_recall``/``organ_f1``: micro over (item, organ);
        * ``status_accuracy``: normal/abnormal right, over organs both sides found;
        * ``abnormality_exact``: abnormality names exactly right, over organs both found;
        * ``abnormality_precision``/``_recall``/``_f1``: micro over (item, organ, name).

    Returns:
        dict: ``{'sentence': metrics, 'report': metrics, 'errors': [...]}`` where each error
        names the item id and what differs.
    """
    out, errors = {}, []
    for level, rows in (('sentence', sentences), ('report', reports)):
        counts = []
        for row in rows:
            c, error = _score_row(structurer, row, level)
            counts.append(c)
            if error:
                errors.append(error)
        out[level] = _summarise(counts)
    out['errors'] = errors
    return out


def _score_row(structurer, row, level):
    """Counts of one labelled row, and what differs (None when it is exactly right)."""
    result = structurer.structure(row['text'])
    if level == 'sentence':
        expected_status = {o: row['status'][o] for o in row['organs']}
    else:
        expected_status = row['status']
    c = _compare(expected_status, row.get('abnormalities', {}), result)
    pred = result['status']
    diff = {}
    if not c['exact']:
        diff['missing'] = sorted(set(expected_status) - set(pred))
        diff['extra'] = sorted(set(pred) - set(expected_status))
    wrong_status = sorted(o for o in set(pred) & set(expected_status)
                          if pred[o] != expected_status[o])
    if wrong_status:
        diff['status'] = {o: pred[o] for o in wrong_status}
    wrong_abn = {o: result['abnormalities'].get(o, []) for o in set(pred) & set(
        expected_status) if set(result['abnormalities'].get(o, [])) != set(
        row.get('abnormalities', {}).get(o, []))}
    if wrong_abn:
        diff['abnormalities'] = wrong_abn
    return c, (dict(id=row.get('id'), text=row['text'], **diff) if diff else None)


METRIC_LABELS = (
    ('organ assignment, exact set', 'organ_exact'),
    ('organ assignment, micro precision', 'organ_precision'),
    ('organ assignment, micro recall', 'organ_recall'),
    ('organ assignment, micro F1', 'organ_f1'),
    ('normal/abnormal accuracy', 'status_accuracy'),
    ('abnormality names, exact per organ', 'abnormality_exact'),
    ('abnormality names, micro precision', 'abnormality_precision'),
    ('abnormality names, micro recall', 'abnormality_recall'),
    ('abnormality names, micro F1', 'abnormality_f1'),
)


def markdown_table(columns, command):
    """A Markdown table of metrics, with the command that made it in a header line.

    Args:
        columns: ``[(title, metrics)]`` with metrics as in :func:`score_structurer`
            (``scores['sentence']``); the title gets ``(n=...)`` appended.
        command: the command line to show above the table.
    """
    lines = [f'`{command}`', '',
             '| metric | ' + ' | '.join(f'{t} (n={m.get("n", 0)})' for t, m in columns) + ' |',
             '|---|' + '---|' * len(columns)]
    for label, key in METRIC_LABELS:
        cells = [f'{m[key]:.3f}' if key in m else '-' for _, m in columns]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


CATEGORY_METRICS = (
    ('organ set exact', 'organ_exact'),
    ('organ F1', 'organ_f1'),
    ('normal/abnormal', 'status_accuracy'),
    ('names exact', 'abnormality_exact'),
    ('names F1', 'abnormality_f1'),
)


def score_by_category(structurers, sentences, split=None):
    """Sentence metrics per ``category`` (and over all rows, key ``all``).

    Args:
        structurers (Callable[[str | None], BaseReportStructurer]): the structurer for a row's
            ``vocabulary`` (None: the default vocabulary).
        sentences (list[dict]): labelled sentence rows with ``category``.
        split (str, optional): score only the rows of this split.

    Returns:
        tuple: ``({category: metrics}, errors)``; categories in the order of their first row,
        then ``all``.
    """
    rows = [r for r in sentences if split is None or r.get('split') == split]
    by_category, errors = {}, []
    for row in rows:
        c, error = _score_row(structurers(row.get('vocabulary')), row, 'sentence')
        by_category.setdefault(row.get('category', 'uncategorised'), []).append(c)
        if error:
            errors.append(error)
    out = {category: _summarise(counts) for category, counts in by_category.items()}
    out['all'] = _summarise([c for counts in by_category.values() for c in counts])
    return out, errors


def category_table(columns, command):
    """A Markdown table: one row per category, metrics of each column.

    Args:
        columns: ``[(title, {category: metrics}, keys)]`` where ``keys`` are metric keys of
            :data:`CATEGORY_METRICS` (None: all of them); the first column's categories give
            the rows and its ``n`` is shown.
        command: the command line shown above the table (None: no command line).
    """
    labels = dict((key, label) for label, key in CATEGORY_METRICS)
    columns = [(title, scores, keys or [k for _, k in CATEGORY_METRICS])
               for title, scores, keys in columns]
    head = ['category', 'n'] + [f'{labels[key]}, {title}' for title, _, keys in columns
                                for key in keys]
    lines = ([f'`{command}`', ''] if command else []) + [
        '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
    for category, first in columns[0][1].items():
        cells = [category if category != 'all' else '**all**', str(first.get('n', 0))]
        for _, by_category, keys in columns:
            m = by_category.get(category, {})
            cells += [f'{m[key]:.3f}' if key in m else '-' for key in keys]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
