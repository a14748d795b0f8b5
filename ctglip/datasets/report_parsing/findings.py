"""Finding terms, negation and the abnormality vocabulary for the rule-based structurer.

A clause is abnormal for an organ when it holds a finding term (``cyst``, ``enlarged``,
``fracture``, ...) that is not negated and that belongs to that organ. Negation follows NegEx
(Chapman et al., 2001) in a small form:

* pre-negation triggers (``no``, ``without``, ``negative for``, ``no evidence of``, ``free of``)
  negate every term after them up to the end of the clause; ``not`` negates the next three
  words (``not enlarged``, ``does not enhance``);
* post-negation triggers (``is not seen``, ``has resolved``, ``no longer visualized``,
  ``absent``) negate the terms in the six words before them;
* pseudo-negations are phrases that contain a trigger but negate nothing (``no change in the
  12 mm nodule``, ``no interval growth``, ``cannot be excluded``); they are masked first.

Every term has one or more kinds that the vocabulary mapping reads: ``cyst``, ``mass``,
``lesion`` (ambiguous: ``hypodense lesion``), ``steatosis``, ``calcification``, ``granuloma``,
``stone``, ``thickening``, ``enlarged``, ``dilated``, ``hydronephrosis``, ``emphysema``,
``nodule`` and ``other``. An ambiguous lesion becomes a cyst or a mass from cues in the clause
(``simple``/``fluid attenuation``/``non-enhancing`` -> cyst; ``solid``/``enhancing``/
``washout`` -> mass; both -> mass; neither -> no vocabulary name).
"""
import re
from dataclasses import dataclass
from typing import FrozenSet

from ctglip.vocabularies import load_abnormality_vocab, organ_group
from ctglip.vocabularies.organs import COARSE_ORGANS

_I = re.IGNORECASE


@dataclass(frozen=True)
class Term:
    """A finding term found in a clause.

    Attributes:
        start: first character in the clause.
        end: one past the last character.
        kinds: what the term says (see the module docstring).
        abnormal: whether the term makes its organ abnormal (cues such as ``simple`` do not).
        negated: set by :func:`find_terms`.
    """
    start: int
    end: int
    kinds: FrozenSet[str]
    abnormal: bool = True
    negated: bool = False


def _t(kinds, pattern, abnormal=True, case=False):
    kinds = frozenset(kinds.split())
    return kinds, re.compile(rf'(?<![\w-])(?:{pattern})(?![\w])', 0 if case else _I), abnormal


# Order only matters for equal spans; overlapping matches keep the leftmost, then the longest.
_TERMS = (
    # chest findings of the CT-RATE vocabulary: equal spans merge their kinds with ``other``
    _t('atelectasis', r'atelecta\w*|fibroatelecta\w*'),
    _t('consolidation', r'consolidat\w*'),
    _t('opacity', r'ground[- ]glass(?: opacit\w*| densit\w*| attenuation)?|opacit\w*|'
                  r'infiltrat\w*|air-?space (?:disease|opacit\w*)|crazy[- ]paving'),
    _t('fibrosis', r'fibros\w*|fibrotic|scar\w*|sequela\w*|(?:parenchymal|fibrotic) bands?|'
                   r'fibroatelecta\w*|honeycomb\w*'),
    _t('mosaic', r'mosaic(?: attenuation| perfusion| pattern| oligemia)?|air[- ]trapping'),
    _t('bronchiectasis', r'bronchiectas\w*|bronchiectatic|bronchiolectas\w*'),
    _t('effusion', r'effusions?|(?:pleural|pericardial) fluid'),
    _t('fluid', r'(?:free|peri\w+) fluid|fluid collections?'),
    _t('atherosclerosis', r'atheroscl\w*|atheromat\w*|plaques?'),
    _t('hernia', r'hernia\w*|herniat\w*'),
    _t('lymphadenopathy', r'lymphadenopath\w*|adenopathy'),
    _t('device other', r'pacemakers?|(?:cardioverter[- ])?defibrillators?|ICD|AICD|'
                       r'(?:pacemaker|pacing|ICD) leads?|sternotomy(?: wires?)?|'
                       r'(?:sternal|cerclage) wires?|(?:central (?:venous )?|venous |port )?'
                       r'catheters?|port-a-cath|(?:chest|venous|infusion) port|'
                       r'(?:endotracheal|nasogastric|tracheostomy|feeding|chest) tubes?|'
                       r'prosthetic (?:aortic |mitral )?valves?|valve (?:replacement|prosthesis)|'
                       r'(?:embolization )?coils?|(?:stent[- ])?grafts?|stents?|surgical clips?'),
    _t('mass', r'cystic (?:mass\w*|neoplasm\w*|tumou?r\w*)|mass(?:es)?(?! effect)|tumou?rs?|'
               r'neoplasm\w*|neoplastic|malignan\w*|metasta\w*|\w*carcinoma\w*|hepatoma|lymphoma|'
               r'hemangioma\w*|haemangioma\w*|adenomas?|focal nodular hyperplasia|myelolipoma\w*|'
               r'pheochromocytoma|angiomyolipoma\w*|sarcoma|incidentaloma'),
    _t('mass', r'HCC|FNH|RCC|AML', case=True),
    _t('cyst', r'(?:pseudo)?cysts?|cystic(?! (?:duct|artery))'),
    _t('lesion', r'lesions?|hypodens\w*|hypoattenuat\w*|low[- ](?:attenuation|density) '
                 r'(?:lesions?|focus|foci|areas?|nodules?)|hyperdens\w*|'
                 r'hyperattenuat\w*|foc(?:us|i)'),
    _t('lesion hypoenhancing', r'hypoenhanc\w*|hypovascular'),
    _t('steatosis', r'steatosis|steatotic|steatohepatitis|fatty (?:liver|infiltration|infiltrate|'
                    r'change|changes|deposition|sparing)|fatty|fat(?:ty)? infiltration|hepatic fat|'
                    r'(?:diffuse(?:ly)? )?(?:decreased|low|reduced) '
                    r'(?:hepatic |liver |parenchymal )?'
                    r'(?:attenuation|density)|diffuse(?:ly)? (?:hypodens\w*|hypoattenuat\w*)'),
    _t('calcification', r'calcifi\w*|calcific'),
    _t('calcification granuloma', r'granulomas?|granulomata|granulomatous'),
    _t('stone', r'stones?|calcul(?:us|i)|\w*lithiasis|gallstones?|nephroliths?|uroliths?|'
                r'calculous'),
    _t('thickening', r'thicken\w*'),
    _t('thickening wall_cue', r'thick-walled|mural thickening|wall edema'),
    _t('enlarged', r'enlarg\w*|\w+megaly|increased in size|bulky'),
    _t('enlarged dilated', r'prominen\w*'),
    _t('dilated', r'dilat\w*|ectatic|ectasia|distension|distention'),
    _t('hydronephrosis', r'hydro(?:uretero)?nephros[ie]s|pelvi-?ca?l[iy]\w*ectasis|pelviectasis|'
                         r'caliectasis|calyectasis|pyelectasis|pyelocaliectasis|pelvocaliectasis'),
    _t('emphysema', r'emphysem\w*|bullae|bulla|bullous|blebs?'),
    _t('nodule', r'\w*nodul\w*'),
    _t('other', r'atelecta\w*|consolidat\w*|ground[- ]glass|opacit\w*|infiltrat\w*|pneumonia|'
                r'pneumonitis|effusions?|(?:hydro|hemo)?pneumothora\w*|hemothorax|empyema|'
                r'fibros\w*|fibrotic|scar\w*|bronchiectas\w*|bronchiectatic|honeycomb\w*|'
                r'tree-in-bud|mosaic attenuation|air-?space (?:disease|opacit\w*)|embol\w*|'
                r'thrombo\w*|thrombus|thrombi|filling defects?|aneurysm\w*|dissection|stenos[ie]s|'
                r'stenotic|occlu\w*|atheroscl\w*|atheromat\w*|plaques?|fractur\w*|degenerat\w*|'
                r'spondyl\w*|osteophyt\w*|\w*listhesis|sclero(?:tic|sis)|\w+sclerosis|lytic|'
                r'blastic|'
                r'lytic-destructive|destructi\w*|erosi\w*|osteopeni\w*|osteopor\w*|wedg\w*|'
                r'deformit\w*|height loss|schmorl\w*|narrowing|narrowed|herniat\w*|hernias?|'
                r'diverticul\w*|\w+itis|inflamm\w*|edema\w*|oedema|stranding|abscess\w*|'
                r'h(?:a)?ematoma\w*|h(?:a)?emorrhag\w*|atroph\w*|hypertroph\w*|hypoplas\w*|'
                r'infarct\w*|ischemi\w*|necros\w*|osteonecrosis|obstruct\w*|tortuous|tortuosity|'
                r'irregular\w*|heterogene\w*|abnormal\w*|suspicious|concerning|worrisome|'
                r'status post|s/p|post-?surgical|post-?operative|resect\w*|\w+ectomy|\w+plasty|'
                r'surgically absent|congenitally absent|stents?|surgical clips?|clips?|grafts?|'
                r'prosthes[ie]s|prosthetic|hardware|fixation|fusion|varices|varix|collaterals?|'
                r'cirrho\w*|sludge|polyps?|(?:free|peri\w+) fluid|fluid collections?|ascites|'
                r'pneumatosis|free air|pneumoperitoneum|bone island|enostosis|sequela\w*|'
                r'volume loss|scoliosis|kyphosis|transition point|lymphadenopathy|adenopathy|'
                r'hyperemi\w*|thrombos[ie]s|IPMN|malrotat\w*|ectopic|horseshoe|duplex|duplicat\w*|'
                r'agenesis|patulous|spondylolys\w*|defects?'),
    # cues: make no organ abnormal, only decide between cyst and mass for an ambiguous lesion
    _t('cyst_cue', r'simple|fluid[- ](?:attenuation|density|attenuating)|water[- ]'
                   r'(?:attenuation|density)|near[- ]water|non-?enhancing|without (?:internal )?'
                   r'enhancement|with no (?:internal )?enhancement|no (?:internal )?enhancement|'
                   r'does not enhance|bosniak|imperceptible wall', abnormal=False),
    _t('mass_cue', r'solid|(?:arterially |avidly |heterogeneously )?enhancing|enhancement|'
                   r'hyperenhanc\w*|hypervascular|wash-?out|infiltrative|heterogeneous\w*',
       abnormal=False),
    _t('duct_cue', r'pancreatic ducts?|pancreatic ductal|main (?:pancreatic )?ducts?|wirsung|'
                   r'double[- ]duct', abnormal=False),
    _t('duct_cue', r'PD|MPD', abnormal=False, case=True),
    _t('collecting_cue', r'collecting systems?|pelvi-?ca?l[iy]ceal|pelvocal[iy]ceal|renal pelvis|'
                         r'calyces|calices|calyceal|caliceal', abnormal=False),
    _t('wall_cue', r'walls?|mural', abnormal=False),
    _t('septal_cue', r'(?:interlobular |intralobular )?sept(?:al|a|um)|kerley', abnormal=False),
    _t('bronchial_cue', r'peri-?bronchial|bronchial walls?|bronchial|bronchi|airway walls?|'
                        r'peribronchovascular', abnormal=False),
    _t('pleural_cue', r'pleura\w*|hemithora\w*', abnormal=False),
    _t('pericardial_cue', r'pericardi\w*', abnormal=False),
    _t('coronary_cue', r'coronar(?:y|ies)|LAD|RCA|circumflex|left main', abnormal=False),
    _t('hiatal_cue', r'hiatal|hiatus|para-?esophageal', abnormal=False),
    _t('lymph_cue', r'lymph nodes?|nodes', abnormal=False),
)

# --- negation -----------------------------------------------------------------------------

_PSEUDO = re.compile(
    r'\bno (?:significant |appreciable |definite |substantial |measurable |significant interval )?'
    r'(?:interval )?(?:change|growth|progression)\b|'
    r'\bno (?:significant )?(?:interval )?increase in size\b|\bno (?:significant )?interval '
    r'(?:increase|enlargement|decrease)\b|\bnot (?:significantly |substantially )?'
    r'(?:changed|grown|increased)\b|\bwithout (?:significant |interval |appreciable )*'
    r'(?:change|growth|progression)\b|\b(?:can ?not|could not|may not) be (?:excluded|ruled out)\b|'
    r'\bnot (?:be )?(?:excluded|ruled out)\b|\bnot only\b|\bno further\b|\bno follow-?up\b',
    _I)
_PRE_NEG = re.compile(
    r'\b(?:no evidence (?:of|for)|without (?:evidence|signs?) of|no (?:signs?|findings?) of|'
    r'negative for|free of|absence of|rather than|resolution of|no|without|nor|neither|never)\b|'
    r'^\W*(?:interval(?:ly)?\s+)?(?:resolved|cleared)\b',  # ``Resolved right pleural effusion.``
    _I)
_NOT = re.compile(r'\b(?:not|cannot|can not)\b', _I)
_POST_NEG = re.compile(
    r'\b(?:(?:is|are|was|were|has been|have been)\s+)?(?:not\s+(?:seen|identified|visuali[sz]ed|'
    r'demonstrated|present|detected|evident|appreciated|noted|observed|visible|found|apparent)|'
    r'no longer (?:seen|visuali[sz]ed|visible|present|identified|evident|demonstrated|apparent)|'
    r'(?:has |have )?(?:resolved|cleared|disappeared)|excluded|ruled out)\b',
    _I)
_ABSENT = re.compile(r'\b(?:is|are|was|were)\s+absent\b', _I)
_SCOPE_END = re.compile(r'\b(?:there (?:is|are)|which|with the exception)\b', _I)
# A comma ends a negation's scope when what follows it is stated as present: ``No splenomegaly,
# hepatic cyst noted``, ``No pneumothorax, small right pleural effusion`` (a list of negated
# findings has no such verb or size: ``No focal lesion, splenomegaly, or ascites``).
_COMMA_POSITIVE = re.compile(
    r',\s*(?=(?:(?:a|an|small|mild|moderate|large|trace|minimal|tiny|\d+(?:\.\d+)?\s*(?:mm|cm))\b'
    r'|[^,]*\b(?:noted|seen|present|identified|demonstrated|is|are)\b))', _I)


def _mask(text, spans):
    chars = list(text)
    for s, e in spans:
        chars[s:e] = ' ' * (e - s)
    return ''.join(chars)


def find_terms(clause):
    """Finding terms and cues of a clause, each marked negated or not.

    Args:
        clause: one clause of a sentence (see :func:`split_clauses`).

    Returns:
        list[Term]: in text order.

    Example:
        >>> clause = 'Stable nodule without calcification'
        >>> [(clause[t.start:t.end], t.negated) for t in find_terms(clause)]
        [('nodule', False), ('calcification', True)]
    """
    found = []
    for kinds, regex, abnormal in _TERMS:
        for m in regex.finditer(clause):
            found.append((m.start(), m.end(), kinds, abnormal))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    terms = []   # leftmost-longest; a span matched by several patterns gets all their kinds
    for s, e, kinds, abnormal in found:
        if terms and (s, e) == (terms[-1].start, terms[-1].end):
            last = terms[-1]
            terms[-1] = Term(s, e, last.kinds | kinds, last.abnormal or abnormal)
        elif not terms or s >= terms[-1].end:
            terms.append(Term(s, e, kinds, abnormal))

    masked = _mask(clause, [m.span() for m in _PSEUDO.finditer(clause)])
    negated = set()
    for m in _PRE_NEG.finditer(masked):
        end = _SCOPE_END.search(masked, m.end())
        stop = end.start() if end else len(masked)
        comma = _COMMA_POSITIVE.search(masked, m.end(), stop)
        stop = comma.start() if comma else stop
        negated.update(i for i, t in enumerate(terms) if m.end() <= t.start < stop)
    for m in _NOT.finditer(masked):
        words = list(re.finditer(r'\S+', masked[m.end():]))[:3]
        stop = m.end() + (words[-1].end() if words else 0)
        negated.update(i for i, t in enumerate(terms) if m.end() <= t.start < stop)
    post_triggers = [m for m in _POST_NEG.finditer(masked)]
    absent = [m for m in _ABSENT.finditer(masked)]
    for m in post_triggers + absent:
        words = list(re.finditer(r'\S+', masked[:m.start()]))[-6:]
        start = words[0].start() if words else m.start()
        hit = [i for i, t in enumerate(terms)
               if t.abnormal and start <= t.start and t.end <= m.start()]
        negated.update(hit)
        if m in absent and not hit:
            # ``the gallbladder is absent``: nothing before it to negate, so the organ is gone
            terms.append(Term(m.start(), m.end(), frozenset({'other'})))
    terms = [Term(t.start, t.end, t.kinds, t.abnormal, i in negated) for i, t in enumerate(terms)]
    return sorted(terms, key=lambda t: t.start)


# --- clauses ------------------------------------------------------------------------------

_CLAUSE_BREAK = re.compile(
    r';|\s+(?:but|however|although|though|whereas|while|except(?: for)?|apart from|aside from|'
    r'other than|otherwise|with the exception of)\b|,\s*(?:which|however)\b|\s+which\b|'
    r',\s*(?=the (?:largest|biggest|dominant)\b)',
    _I)
_JOIN_BREAK = re.compile(r'(?:,\s*and|\s+and|,)\s+(?=(?:the|there|a|an|it|no)\b)', _I)
_VERB = re.compile(r'\b(?:is|are|was|were|has|have|had|contains?|shows?|demonstrates?|measures?|'
                   r'measuring|appears?|remains?|seen|noted|present|identified)\b', _I)


def split_clauses(sentence):
    """Split a sentence into clauses where the subject or the polarity may change.

    Breaks at ``;``, ``but``, ``however``, ``although``, ``except``, ``otherwise``, ``which``,
    and at ``and``/``,`` when a new subject with a verb follows (``..., and the spleen is
    enlarged``). Negation and the organ a finding belongs to are decided inside a clause.

    Returns:
        list[tuple[int, int]]: ``(start, end)`` character spans that cover the sentence.
    """
    cuts = {0, len(sentence)}
    for m in _CLAUSE_BREAK.finditer(sentence):
        cuts.add(m.start())
    base = sorted(cuts)
    for s, e in zip(base[:-1], base[1:]):
        for m in _JOIN_BREAK.finditer(sentence, s, e):
            if _VERB.search(sentence, m.end(), e):
                cuts.add(m.start())
    edges = sorted(cuts)
    return [(s, e) for s, e in zip(edges[:-1], edges[1:]) if sentence[s:e].strip(' ,.;')]


# --- abnormality vocabulary ---------------------------------------------------------------

_HEART = frozenset(COARSE_ORGANS['heart']) | {'heart'}
_LUNG = frozenset(COARSE_ORGANS['lung']) | {'lung', 'lung_left', 'lung_right'}
_ARTERIES = frozenset({'aorta', 'brachiocephalic_trunk', 'subclavian_artery_left',
                       'subclavian_artery_right', 'common_carotid_artery_left',
                       'common_carotid_artery_right', 'pulmonary_artery', 'iliac_artery_left',
                       'iliac_artery_right'})


def chest_names(organ, kinds, cues):
    """Chest findings (the CT-RATE vocabulary's names) for one organ in one clause."""
    names = []
    plaque = kinds & {'calcification', 'atherosclerosis'}
    if 'device' in kinds:
        names.append('medical material')
    if organ in _HEART:
        if 'enlarged' in kinds:
            names.append('cardiomegaly')
        if 'effusion' in kinds or ('fluid' in kinds and 'pericardial_cue' in cues):
            names.append('pericardial effusion')
        if plaque and 'coronary_cue' in cues:
            names.append('coronary artery wall calcification')
    if organ in _ARTERIES and plaque:
        names.append('arterial wall calcification')
    if organ in ('esophagus', 'stomach') and 'hernia' in kinds and 'hiatal_cue' in cues:
        names.append('hiatal hernia')
    if organ in _LUNG:
        for kind in ('atelectasis', 'consolidation', 'bronchiectasis'):
            if kind in kinds:
                names.append(kind)
        if 'opacity' in kinds and 'consolidation' not in kinds:
            names.append('lung opacity')
        if 'fibrosis' in kinds:
            names.append('pulmonary fibrotic sequela')
        if 'mosaic' in kinds:
            names.append('mosaic attenuation pattern')
        if 'thickening' in kinds and 'septal_cue' in cues:
            names.append('interlobular septal thickening')
        elif 'thickening' in kinds and 'bronchial_cue' in cues:
            names.append('peribronchial thickening')
    if (organ in _LUNG or organ == 'pleura') and 'effusion' in kinds and \
            'pericardial_cue' not in cues:
        names.append('pleural effusion')
    if 'lymphadenopathy' in kinds or ('lymph_cue' in cues and 'enlarged' in kinds):
        names.append('lymphadenopathy')
    return names


def vocabulary_names(organ, kinds, cues, vocabulary=None):
    """Abnormality names of a vocabulary for one organ in one clause.

    The rules know the default vocabulary's 16 findings (by the organ's default group) and the
    chest findings of the CT-RATE vocabulary (:func:`chest_names`); the names returned are
    those that the vocabulary gives the organ.

    Args:
        organ: a TotalSegmentator organ name (or a coarse one: ``heart``, ``lung``).
        kinds: kinds of the non-negated abnormal terms that belong to the organ.
        cues: kinds of every non-negated term and cue of the clause (``cyst_cue``,
            ``mass_cue``, ``duct_cue``, ``collecting_cue``, ``wall_cue``, ...).
        vocabulary: the abnormality vocabulary (None: the default one).

    Returns:
        list[str]: names of ``vocabulary.abnormalities_of(organ)`` (empty for organs outside
        its groups and for abnormal findings the vocabulary does not cover).
    """
    allowed = load_abnormality_vocab(vocabulary).abnormalities_of(organ)
    if not allowed:
        return []
    names = [n for n in _default_names(organ, kinds, cues) + chest_names(organ, kinds, cues)
             if n in allowed]
    return list(dict.fromkeys(names))


def _default_names(organ, kinds, cues):
    """The default vocabulary's names, by the organ's default group."""
    group = organ_group(organ)
    if group is None and organ in ('lung', 'lung_left', 'lung_right'):
        group = 'lung'
    names = []
    lesion_cyst = 'lesion' in kinds and 'cyst_cue' in cues and 'mass_cue' not in cues
    lesion_mass = 'lesion' in kinds and 'mass_cue' in cues
    if group == 'liver':
        if 'cyst' in kinds or lesion_cyst:
            names.append('liver cyst')
        if 'mass' in kinds or lesion_mass:
            names.append('liver mass')
        if 'steatosis' in kinds:
            names.append('hepatic steatosis')
        if 'calcification' in kinds:
            names.append('liver calcification')
    elif group == 'gallbladder':
        if 'stone' in kinds:
            names.append('gallstone')
        if 'thickening' in kinds and 'wall_cue' in cues:
            names.append('gallbladder wall thickening')
    elif group == 'spleen':
        if 'enlarged' in kinds:
            names.append('splenomegaly')
        if 'cyst' in kinds or lesion_cyst:
            names.append('splenic cyst')
    elif group == 'pancreas':
        if kinds & {'mass', 'hypoenhancing'} or lesion_mass:
            names.append('pancreatic mass')
        if (kinds & {'dilated'}) and 'duct_cue' in cues:
            names.append('pancreatic duct dilation')
    elif group == 'kidney':
        if 'cyst' in kinds or lesion_cyst:
            names.append('kidney cyst')
        if 'stone' in kinds:
            names.append('kidney stone')
        if 'hydronephrosis' in kinds or ('dilated' in kinds and 'collecting_cue' in cues):
            names.append('hydronephrosis')
    elif group == 'lung':
        if kinds & {'nodule', 'granuloma'}:
            names.append('lung nodule')
        if 'emphysema' in kinds:
            names.append('emphysema')
    elif group == 'adrenal_gland':
        if kinds & {'nodule', 'mass', 'lesion'}:
            names.append('adrenal nodule')
    return names
