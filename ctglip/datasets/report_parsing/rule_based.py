"""The rule-based report structurer: organ lexicon + NegEx-style negation + vocabulary rules.

A sentence is split into clauses (:func:`~.findings.split_clauses`). In each clause the organ
mentions (:func:`~.lexicon.find_mentions`) are grouped (``liver and spleen`` is one group) and
every non-negated finding term is given to one group: the group whose span it is
(``splenomegaly``), the only group, the next group when a preposition leads to it (``cyst in
the left kidney``), else the nearest group before it (``hepatic cyst``). An organ is abnormal
in the sentence when a clause gives it a finding; the finding's kinds and the clause's cues
map to abnormality names (:func:`~.findings.vocabulary_names`).

A clause that names no organ takes the organs of the clause before it (``The liver is enlarged
and contains a cyst``), restricted to a side it states (``..., except for a cyst in the left
upper pole``). A sentence that names no organ takes the organs of its organ header
(``KIDNEYS: No hydronephrosis.``) or, when it starts like a continuation (``It``, ``This``,
``The lesion``), those of the sentence before it.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ctglip.datasets.report_parsing.base import BaseReportStructurer
from ctglip.datasets.report_parsing.findings import find_terms, split_clauses, vocabulary_names
from ctglip.datasets.report_parsing.lexicon import (LUNG_LOBES, OrganMention, find_mentions,
                                                    is_location_only, side_in)
from ctglip.datasets.report_parsing.sentences import split_report
from ctglip.registry import REPORT_STRUCTURERS
from ctglip.vocabularies import load_abnormality_vocab, organ_vocabulary
from ctglip.vocabularies.organs import organs_in

# Text between two organ mentions that makes them one group: lists (``liver, spleen and
# kidneys``) and extension (``IVC extending into the right atrium``, ``L4 on L5``).
_COORDINATION = re.compile(
    r'^(?:\s+(?:arch|root|bulb|wall|walls|parenchyma|arteries|artery|vessels|origins?|'
    r'glands?|lobes?))?'
    r'[\s,/&]*(?:(?:and/or|and|or|as well as|nor|plus|on|to|into|through|'
    r'(?:extending|extends|extension) (?:in)?to)\s+)?(?:the\s+)?'
    r'(?:(?:left|right|both|bilateral)\s+)?$', re.IGNORECASE)
# A finding followed (within a few words) by one of these is about the next organ:
# ``cyst arises from the lower pole of the left kidney``.
_LEADS_TO = re.compile(r'^\W*(?:\S+\s+){0,3}?(?:in|of|within|involving|at|throughout|along|'
                       r'from|on|into|affecting|arising)\b', re.IGNORECASE)
# ``on the left`` at the end of a phrase, not leading into an organ name.
_FLOATING_SIDE = re.compile(r'\bon the (left|right)(?: side)?\b(?!\s+\w)', re.IGNORECASE)
# A sentence that names no organ continues the one before when it refers back to it.
_ANAPHORA = re.compile(
    r'^\s*(?:it|this|these|they|which|another|an additional|additional|a second|'
    r'the (?:lesion|mass|nodule|cyst|stone|calculus|finding|abnormality|collection|tumou?r|'
    r'fracture|effusion|opacity|focus)s?)\b|\b(?:same|similar|second|additional|other) '
    r'(?:\w+ )?(?:lobe|segment|location|side|lesions?|nodules?|cysts?|masses|stones?|calculi|'
    r'foci)\b', re.IGNORECASE)


@dataclass
class SentenceFindings:
    """What one sentence says about organs.

    Attributes:
        organs: the organs the sentence is about, in vocabulary order.
        status: ``{organ: 'normal' | 'abnormal'}``.
        abnormalities: ``{organ: [name, ...]}`` for every organ of ``organs`` (may be empty).
    """
    organs: Tuple[str, ...] = ()
    status: Dict[str, str] = field(default_factory=dict)
    abnormalities: Dict[str, List[str]] = field(default_factory=dict)


def _ordered(organs, order):
    return tuple(sorted(set(organs), key=lambda o: order.get(o, len(order))))


def _negated_at(terms, mention, offset):
    for t in terms:
        if t.start + offset < mention.end and mention.start < t.end + offset:
            return t.negated
    return False


def _select_mentions(text, clause_mentions, clause_terms, offset, sentence_mentions, clause):
    """The mentions that count in one clause: drops locations, generics and implied ones."""
    floating = {m.group(1).lower() for m in _FLOATING_SIDE.finditer(clause)}
    if len(floating) == 1:
        # ``renal cortical scarring on the left``: the side comes after the finding
        side = floating.pop()
        clause_mentions = [
            OrganMention(m.start, m.end, _on_side(m.organs, side), m.candidates, side, m.implied,
                         m.generic, m.scope)
            if m.side is None and _on_side(m.organs, side) != m.organs else m
            for m in clause_mentions]
    clause_mentions = _refine_by_lung_zone(text, clause_mentions)
    consumed = [m for m in clause_mentions if not m.organs]
    mentions = [m for m in clause_mentions if m.organs]
    located = [m for m in mentions if not is_location_only(text, m)]
    if located:
        mentions = located
    explicit = [m for m in mentions if not m.implied or m.side is not None]
    kept = []
    for i, m in enumerate(mentions):
        prev = mentions[i - 1] if i else None
        if prev is not None and set(m.candidates) <= set(LUNG_LOBES) and set(prev.organs) < set(
                m.candidates) and re.fullmatch(r'[\s-]*', text[prev.end:m.start]):
            # ``biapical pleural thickening``, ``right lower lobe pulmonary nodule``: the lobe
            # before it says where in the lungs
            continue
        if m.side is None and not m.generic and set(m.organs) != set(m.organs) & {
                o for n in explicit if n.side in ('left', 'right') for o in n.organs}:
            # ``right kidney ... renal cell carcinoma``: an unsided mention of a paired organ
            # refers to the side named in the same clause
            sided = [o for n in explicit if n.side in ('left', 'right') for o in n.organs
                     if o in m.candidates]
            if sided and not m.implied:
                m = OrganMention(m.start, m.end, tuple(dict.fromkeys(sided)), m.candidates,
                                 m.side, m.implied, m.generic, m.scope)
        if m.generic and m.side != 'both' and any(
                not n.generic and set(n.organs) & set(m.candidates) for n in explicit):
            continue
        if m.implied and m.side is None:
            if any(n is not m and set(n.organs) & set(m.scope) for n in explicit):
                continue
            here = {n.start for n in clause_mentions}
            elsewhere = [o for n in sentence_mentions if not n.implied and n.start not in here
                         for o in n.organs if o in m.candidates]
            if elsewhere and not _negated_at(clause_terms, m, offset):
                m = OrganMention(m.start, m.end, tuple(dict.fromkeys(elsewhere)), m.candidates,
                                 m.side, m.implied, m.generic, m.scope)
        kept.append(m)
    # spans that name no organ (``renal artery``, ``ureterovesical junction``) stay as targets
    # so that a finding about them is not given to an organ
    return sorted(kept + consumed, key=lambda m: m.start)


_ZONE = re.compile(r'\b(?:bases?|basilar|bibasal|bibasilar|apex|apices|apical|biapical)\b',
                   re.IGNORECASE)
_ZONE_LEAD = re.compile(r'\b(?:at|in|along|of|involving)\s+(?:the\s+)?(?:(?:visuali[sz]ed|'
                        r'imaged|included|partially imaged)\s+)?$', re.IGNORECASE)


def _refine_by_lung_zone(text, mentions):
    """``pleural effusions at the lung bases``: a lung-wide mention followed by a zone of the
    lungs (bases, apices) in the same clause means the lobes of that zone."""
    lobes = set(LUNG_LOBES)
    zones = [m for m in mentions if m.organs and set(m.organs) < lobes and
             _ZONE.search(text[m.start:m.end]) and _ZONE_LEAD.search(text[:m.start])]
    if not zones:
        return mentions
    out = []
    for m in mentions:
        wide = m.organs and set(m.organs) <= lobes and m not in zones
        after = [z for z in zones if z.start >= m.end]
        if wide and after:
            zone = set(after[0].candidates)
            refined = tuple(o for o in m.organs if o in zone) or m.organs
            m = OrganMention(m.start, m.end, refined, m.candidates, m.side, m.implied, m.generic,
                             m.scope)
        out.append(m)
    return out


def _groups(text, mentions):
    """Coordinated mentions form one group: ``liver, spleen and left kidney``."""
    groups = []
    for m in mentions:
        if groups and not m.implied and not groups[-1][-1].implied and m.organs and \
                groups[-1][-1].organs and \
                _COORDINATION.match(text[groups[-1][-1].end:m.start]):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _target(text, term_start, term_end, groups, finding_spans):
    """The index of the group that a finding term belongs to."""
    for i, g in enumerate(groups):
        if any(m.start < term_end and term_start < m.end for m in g):
            return i
    if len(groups) == 1:
        return 0
    after = [i for i, g in enumerate(groups) if g[0].start >= term_end]
    before = [i for i, g in enumerate(groups) if g[-1].end <= term_start]
    if after:
        next_start = groups[after[0]][0].start
        gap = text[term_end:next_start]
        other_finding = any(term_end <= s and e <= next_start for s, e in finding_spans)
        if len(gap.split()) <= 8 and _LEADS_TO.search(gap) and not other_finding:
            return after[0]
    if before:
        return before[-1]
    return after[0] if after else 0


def _on_side(organs, side):
    """The organs of one side (unpaired organs stay); all of them if none is on that side."""
    other = 'right' if side == 'left' else 'left'
    kept = tuple(o for o in organs if other not in o.split('_'))
    return kept or tuple(organs)


def _restrict_to_side(organs, clause):
    side = side_in(clause)
    return _on_side(organs, side) if side in ('left', 'right') else organs


def analyze_sentence(text, context_organs=(), order=None, vocabulary=None):
    """Organs, status and abnormality names of one sentence.

    Args:
        text: one sentence without headers.
        context_organs: organs to use when the sentence names none (from an organ header or
            the sentence before).
        order: ``{organ: index}`` for the output order (v1 vocabulary order by default).
        vocabulary: the abnormality vocabulary of the names (None: the default one).

    Returns:
        SentenceFindings

    Example:
        >>> analyze_sentence('Bilateral renal cysts; no hydronephrosis.').abnormalities
        {'kidney_right': ['kidney cyst'], 'kidney_left': ['kidney cyst']}
    """
    order = order or _V1_ORDER
    sentence_mentions = find_mentions(text)
    clauses = []   # (start, end, text, terms, mention groups) per clause
    for cs, ce in split_clauses(text):
        clause_text = text[cs:ce]
        terms = find_terms(clause_text)
        in_clause = [m for m in sentence_mentions if cs <= m.start < ce]
        selected = _select_mentions(text, in_clause, terms, cs, sentence_mentions, clause_text)
        groups = _groups(text, selected)
        clauses.append((cs, ce, clause_text, terms, groups))

    own = [bool(c[4]) for c in clauses]   # consume-only groups count: the clause named something
    if not any(own) and not context_organs:
        return SentenceFindings()
    status, names, organs_seen = {}, {}, []
    previous = None
    # clauses that name no organ take the nearest clause before (or after) that does
    fallback = [i for i, has in enumerate(own) if has]
    for i, (cs, ce, clause_text, terms, groups) in enumerate(clauses):
        findings_at = [(t.start + cs, t.end + cs) for t in terms if t.abnormal and not t.negated]
        if groups:
            group_organs = [tuple(o for m in g for o in m.organs) for g in groups]
        else:
            if previous is not None:
                inherited = previous
            elif fallback:
                nxt = clauses[fallback[0]][4]
                inherited = tuple(o for g in nxt for m in g for o in m.organs)
            else:
                inherited = tuple(context_organs)
            group_organs = [_restrict_to_side(inherited, clause_text)]
        clause_organs = tuple(dict.fromkeys(o for g in group_organs for o in g))
        previous = clause_organs
        organs_seen.extend(clause_organs)
        kinds = {o: set() for o in clause_organs}
        abnormal = set()
        for t in terms:
            if t.negated or not t.abnormal:
                continue
            if groups:
                idx = _target(text, t.start + cs, t.end + cs, groups, findings_at)
                targets = group_organs[idx]
            else:
                targets = group_organs[0]
            for o in targets:
                kinds[o].update(t.kinds)
                abnormal.add(o)
        cues = set().union(*(t.kinds for t in terms if not t.negated)) if terms else set()
        for o in clause_organs:
            if o in abnormal:
                status[o] = 'abnormal'
            else:
                status.setdefault(o, 'normal')
            for name in vocabulary_names(o, kinds[o], cues, vocabulary):
                names.setdefault(o, [])
                if name not in names[o]:
                    names[o].append(name)
    organs = _ordered(organs_seen, order)
    return SentenceFindings(
        organs=organs,
        status={o: status[o] for o in organs},
        abnormalities={o: names.get(o, []) for o in organs})


_V1_ORDER = {o: i for i, o in enumerate(organ_vocabulary('totalseg_v1'))}


@REPORT_STRUCTURERS.register_module()
class RuleBasedReportStructurer(BaseReportStructurer):
    """Rule-based organ-level structuring of CT reports (no model, no downloads).

    See the package docstring for the approach, the conventions and the limits.

    Args:
        vocab: organ vocabulary of the output (a scheme name, a JSON class map or a list of
            names). The rules read v1 organs; one outside ``vocab`` stands for the coarse organ
            of ``vocab`` that holds it (v2's ``heart``, a region mask's ``lung``), else it is
            left out. Default: the 104 TotalSegmentator v1 organs.
        abnormality_vocab: the abnormality vocabulary of the names (configs set the top-level
            key ``abnormality_vocab``; None: the default vocabulary). Its findings that name
            no organ (``Mediastinal lymphadenopathy.``, ``Sternotomy wires.``) go to the organs
            of their group.

    Example:
        >>> s = RuleBasedReportStructurer()
        >>> s.structure('FINDINGS: Cholelithiasis. Both kidneys are normal.')['status']
        {'kidney_right': 'normal', 'kidney_left': 'normal', 'gallbladder': 'abnormal'}
    """

    def __init__(self, vocab='totalseg_v1', abnormality_vocab=None):
        self.vocab = organ_vocabulary(vocab)
        self._order = {o: i for i, o in enumerate(self.vocab)}
        self.abnormality_vocab = load_abnormality_vocab(abnormality_vocab)

    def structure_sentence(self, sentence, context_organs=()):
        """Organs, status and abnormalities of one sentence (no header or context handling)."""
        result = analyze_sentence(sentence, context_organs, _V1_ORDER, self.abnormality_vocab)
        result = self._restrict(result)
        if not result.organs and not context_organs:
            result = self._organless(sentence)
        return result

    def structure(self, report):
        """Structure one report; see :meth:`BaseReportStructurer.structure`."""
        if not isinstance(report, str):
            raise TypeError(f'report must be a str, got {type(report).__name__}')
        findings, status, abnormalities = {}, {}, {}
        previous, section = (), None
        for sentence in split_report(report):
            if sentence.section != section:
                previous, section = (), sentence.section
            result = self.structure_sentence(sentence.body)
            if not result.organs:
                context = previous if previous and _ANAPHORA.search(sentence.body) else \
                    sentence.header_organs
                if context:
                    result = self.structure_sentence(sentence.body, context)
            if not result.organs:
                continue
            previous = result.organs
            for organ in result.organs:
                texts = findings.setdefault(organ, [])
                if sentence.text not in texts:
                    texts.append(sentence.text)
                if result.status[organ] == 'abnormal' or organ not in status:
                    status[organ] = result.status[organ]
                merged = abnormalities.setdefault(organ, [])
                merged.extend(n for n in result.abnormalities[organ] if n not in merged)
        organs = _ordered(findings, self._order)
        return dict(findings={o: findings[o] for o in organs},
                    status={o: status[o] for o in organs},
                    abnormalities={o: abnormalities[o] for o in organs})

    def _restrict(self, result):
        """Map the v1 organs of a result into the output vocabulary (coarse organs merge:
        abnormal wins, names are united)."""
        if len(self.vocab) == len(_V1_ORDER) and set(self.vocab) == set(_V1_ORDER):
            return result
        status, names = {}, {}
        for organ in result.organs:
            for target in organs_in(organ, self._order):
                if result.status[organ] == 'abnormal' or target not in status:
                    status[target] = result.status[organ]
                merged = names.setdefault(target, [])
                merged.extend(n for n in result.abnormalities[organ] if n not in merged)
        organs = _ordered(status, self._order)
        allowed = self.abnormality_vocab.abnormalities_of  # a coarse organ's own names
        return SentenceFindings(organs, {o: status[o] for o in organs},
                                {o: [n for n in names[o] if n in allowed(o)] for o in organs})

    def _organless(self, sentence):
        """A sentence that names no organ but a finding of the vocabulary that has no organ
        word of its own (lymphadenopathy, medical material): the organs of its group."""
        vocab = self.abnormality_vocab
        wanted = [n for n in _ORGANLESS if vocab.group_of(n) is not None]
        if not wanted:
            return SentenceFindings()
        found, negated = set(), set()
        for cs, ce in split_clauses(sentence):
            terms = find_terms(sentence[cs:ce])
            cues = set().union(*(t.kinds for t in terms if not t.negated)) if terms else set()
            for t in terms:
                for name in wanted:
                    if _ORGANLESS[name](t.kinds, cues):
                        (negated if t.negated else found).add(name)
        status, names = {}, {}
        for name in [n for n in wanted if n in found or n in negated]:
            for organ in vocab.groups[vocab.group_of(name)]:
                if organ not in self._order:
                    continue
                if name in found:
                    status[organ] = 'abnormal'
                    names.setdefault(organ, []).append(name)
                else:
                    status.setdefault(organ, 'normal')
                    names.setdefault(organ, [])
        organs = _ordered(status, self._order)
        return SentenceFindings(organs, {o: status[o] for o in organs},
                                {o: names[o] for o in organs})


# findings that report text often gives without an organ word, and how a term shows them
_ORGANLESS = {
    'lymphadenopathy': lambda kinds, cues: 'lymphadenopathy' in kinds or (
        'enlarged' in kinds and 'lymph_cue' in cues),
    'medical material': lambda kinds, cues: 'device' in kinds,
}
