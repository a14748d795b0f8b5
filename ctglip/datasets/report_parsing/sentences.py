"""Split a free-text radiology report into sentences, with the section each one belongs to.

Handles section headers (``FINDINGS:``, ``IMPRESSION:``, an all-capitals line such as
``IMPRESSION``), organ headers (``LIVER:``, ``Lungs and pleura:``, ``Lower chest:``), numbered
and bulleted lists (``1. ...``, ``2) ...``, ``- ...``), lines wrapped inside a sentence,
abbreviations (``approx.``, ``e.g.``, ``vs.``) and decimals (``1.5 cm``). A period ends a
sentence only when whitespace and an upper-case letter, a digit or an opening bracket follow,
so ``segment VII. The spleen`` splits and ``approx. 2 cm`` does not.

Sections such as ``TECHNIQUE``, ``COMPARISON``, ``INDICATION`` and ``CLINICAL HISTORY`` hold no
findings about this study and are skipped. An organ header is kept in front of the first
sentence of its section and names the organs for later sentences that name none
(``KIDNEYS: Normal size. No hydronephrosis.``).
"""
import re
from dataclasses import dataclass
from typing import Tuple

from ctglip.datasets.report_parsing.lexicon import find_mentions

ABBREVIATIONS = frozenset({
    'approx', 'appr', 'ca', 'cf', 'dr', 'e.g', 'eg', 'i.e', 'ie', 'etc', 'fig', 'figs', 'incl',
    'max', 'min', 'mr', 'mrs', 'ms', 'no', 'nos', 'resp', 'vs', 'viz', 'st', 'prox', 'dist',
    'ant', 'post', 'sup', 'inf', 'lat', 'med', 'lt', 'rt', 'al', 'sig', 'img', 'ser', 'est',
    'diam', 'avg', 'wk', 'wks', 'yr', 'yrs', 'mo', 'mos', 'hx', 'pt', 'pts', 'u.s', 'b/l',
})
FINDING_SECTIONS = frozenset({
    'findings', 'finding', 'impression', 'impressions', 'conclusion', 'conclusions', 'summary',
    'report', 'result', 'results', 'opinion', 'assessment', 'diagnosis', 'interpretation',
    'addendum', 'comment', 'comments'})
SKIPPED_SECTIONS = frozenset({
    'technique', 'techniques', 'comparison', 'comparisons', 'indication', 'indications', 'history',
    'clinical', 'reason', 'exam', 'examination', 'procedure', 'protocol', 'contrast', 'dose', 'dlp',
    'ctdi', 'recommendation', 'recommendations', 'signed', 'dictated', 'electronically',
    'radiologist', 'referring', 'physician', 'patient', 'date', 'accession', 'request',
    'requested', 'title', 'study', 'prior', 'priors'})

_LIST_MARKER = re.compile(r'(?:^|(?<=[.:;]))[ \t]*\(?\d{1,2}[.)](?=[ \t]+[A-Za-z0-9(])',
                          re.MULTILINE)
_BULLET = re.compile(r'^[ \t]*[-*\u2022][ \t]+', re.MULTILINE)
_HEADER = re.compile(r"\s*([A-Za-z][A-Za-z /&,()'-]{0,50}?)\s*:(?!\d)\s*")
_CAPS_HEADER = re.compile(r"[A-Z][A-Z /&,'-]{2,40}")
_SENTENCE_END = re.compile(r'[.!?]+(?=\s|$)')


@dataclass(frozen=True)
class ReportSentence:
    """One sentence of a report.

    Attributes:
        text: the sentence as written, with its organ header in front when it is the first
            sentence under one (``LIVER: Normal in size.``); section headers are removed.
        body: the part to read for organs and findings (no headers).
        section: index of the section (a new one starts at every header).
        header_organs: organs named by the organ header of the section, () if none.
    """
    text: str
    body: str
    section: int
    header_organs: Tuple[str, ...] = ()


def _units(report):
    """Lines of the report with list markers made into line breaks and wrapped lines joined."""
    text = report.replace('\r\n', '\n').replace('\r', '\n')
    text = _LIST_MARKER.sub('\n', text)
    text = _BULLET.sub('', text)
    units = []
    for line in text.split('\n'):
        line = ' '.join(line.split())
        if not line:
            units.append('')
            continue
        if units and units[-1] and not re.search(r'[.:;!?]$', units[-1]) and \
                re.match(r'[a-z0-9(]', line):
            units[-1] += ' ' + line
        else:
            units.append(line)
    return [u for u in units if u]


def _split_line(line):
    out, start = [], 0
    for m in _SENTENCE_END.finditer(line):
        rest = line[m.end():].lstrip()
        if not rest:
            break
        word = re.search(r'(\S*)$', line[start:m.start()]).group(1).lower().lstrip('(')
        if word in ABBREVIATIONS:
            continue
        if not (rest[0].isupper() or rest[0].isdigit() or rest[0] in '(["\''):
            continue
        out.append(line[start:m.end()].strip())
        start = m.end()
    tail = line[start:].strip()
    if tail:
        out.append(tail)
    return out


def _header_kind(header):
    words = set(re.findall(r'[a-z]+', header.lower()))
    if words & FINDING_SECTIONS:
        return 'finding'
    if words & SKIPPED_SECTIONS:
        return 'skip'
    return 'organ'


def _peel_header(sentence):
    """``(header, rest)`` when the sentence starts with a header of at most five words."""
    m = _HEADER.match(sentence)
    if not m:
        return None, sentence
    header = m.group(1).strip()
    if len(header.split()) > 5:
        return None, sentence
    return header, sentence[m.end():]


def split_report(report):
    """Split a report into :class:`ReportSentence` s, skipping non-finding sections.

    Args:
        report: free text of one radiology report.

    Returns:
        list[ReportSentence]: in report order.

    Example:
        >>> [s.text for s in split_report('FINDINGS: Liver: Normal. 1.5 cm cyst in segment VII. '
        ...                               'IMPRESSION: 1. Hepatic cyst.')]
        ['Liver: Normal.', '1.5 cm cyst in segment VII.', 'Hepatic cyst.']
    """
    out = []
    kind, section, header_organs = 'finding', 0, ()
    for unit in _units(report):
        if _CAPS_HEADER.fullmatch(unit) and len(unit.split()) <= 4:
            kind, section = _header_kind(unit), section + 1
            header_organs = ()
            if kind == 'organ':
                header_organs = _organs_of(unit)
            continue
        for sentence in _split_line(unit):
            shown = sentence
            while True:
                header, rest = _peel_header(sentence)
                if header is None:
                    break
                kind, section = _header_kind(header), section + 1
                header_organs = _organs_of(header) if kind == 'organ' else ()
                if kind != 'organ':
                    shown = rest
                sentence = rest
            if kind == 'skip' or not sentence.strip(' .;:'):
                continue
            out.append(ReportSentence(shown.strip(), sentence.strip(), section, header_organs))
    return out


def split_sentences(report):
    """The sentence texts of a report (see :func:`split_report`)."""
    return [s.text for s in split_report(report)]


def _organs_of(header):
    organs = []
    for m in find_mentions(header):
        organs.extend(o for o in m.organs if o not in organs)
    return tuple(organs)
