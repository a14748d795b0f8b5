"""Organ lexicon: find the TotalSegmentator v1 organs that a report sentence talks about.

A mention is a span of the sentence that names one or more organs of the v1 vocabulary:
synonyms and adjectives (``hepatic`` -> ``liver``), laterality (``left renal`` ->
``kidney_left``; ``bilateral``, ``both`` or no side -> both sides), lung lobes
(``right lower lobe``, ``RLL``, ``lingula``, ``lung bases``), vertebral levels and ranges
(``L4-L5``, ``T11 through L2``, ``L5-S1`` -> ``vertebrae_L5`` + ``sacrum``) and ribs
(``left 7th and 8th ribs``). Entries are tried in order and a span that an earlier entry took
is not read again, so ``splenic vein`` is the portal/splenic vein and not the spleen, and
``hepatic flexure`` is the colon and not the liver. Some entries only consume text so that it
names no organ (``portal venous phase``, ``renal artery``, ``common bile duct``).

Conventions (documented in the package docstring): a paired organ without a side means both
sides; ``lungs``/``pulmonary``/``pleural`` mean all lobes (of a side when one is given);
``heart``/``cardiac``/``pericardial``/``coronary`` mean the five v1 heart structures;
``bones``/``osseous`` mean every bone of the vocabulary; ``bowel`` means small bowel and colon;
``biliary``/``intrahepatic`` mean the liver.

Kinds of mentions:
    * explicit: the organ is named (``left kidney``).
    * implied: a finding word that implies the organ (``hydronephrosis`` -> kidneys,
      ``atelectasis`` -> lungs). It counts only when the organ is not named in the same clause
      (``left kidney with hydronephrosis`` stays left), unless it carries its own side
      (``left hydronephrosis``).
    * generic: a name for a whole family (``lungs``, ``spine``, ``bones``, ``bowel``). It is
      dropped when a more specific member is named in the same clause (``Lungs: nodule in the
      RLL`` -> only the right lower lobe), unless it is explicitly bilateral.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Tuple

from ctglip.datasets.organs import ORGAN_GROUPS, organ_vocabulary

_VOCAB = frozenset(organ_vocabulary('totalseg_v1'))

LUNG_LOBES = ORGAN_GROUPS['lung']
KIDNEYS = ORGAN_GROUPS['kidney']
HEART = ('heart_myocardium', 'heart_atrium_left', 'heart_ventricle_left', 'heart_atrium_right',
         'heart_ventricle_right')
CERVICAL = tuple(f'vertebrae_C{i}' for i in range(1, 8))
THORACIC = tuple(f'vertebrae_T{i}' for i in range(1, 13))
LUMBAR = tuple(f'vertebrae_L{i}' for i in range(1, 6))
VERTEBRAE = CERVICAL + THORACIC + LUMBAR
RIBS = tuple(f'rib_{side}_{i}' for side in ('left', 'right') for i in range(1, 13))
BONES = VERTEBRAE + RIBS + tuple(f'{bone}_{side}' for bone in (
    'humerus', 'scapula', 'clavicula', 'femur', 'hip') for side in ('left', 'right')) + ('sacrum',)
GLUTEAL = tuple(f'gluteus_{m}_{{side}}' for m in ('maximus', 'medius', 'minimus'))
GI_TRACT = ('esophagus', 'stomach', 'duodenum', 'small_bowel', 'colon')

# Vertebral levels in cranio-caudal order, for ranges such as ``T11-L2``.
_LEVELS = [v.split('_')[1] for v in VERTEBRAE] + ['S1']

SIDE_WORDS = re.compile(r'\b(left|right|bilateral(?:ly)?|both|bi-?basilar|bibasal|lt|rt)\b',
                        re.IGNORECASE)


@dataclass(frozen=True)
class OrganMention:
    """One span of a sentence that names organs.

    Attributes:
        start: first character of the span in the sentence.
        end: one past the last character.
        organs: the organs meant, after laterality (empty for consume-only spans).
        candidates: the organs of every side (the family used for implied/generic checks).
        side: ``'left'``, ``'right'``, ``'both'`` when a side was stated, else None.
        implied: a finding word that implies the organ rather than naming it.
        generic: a name for a whole family (``lungs``, ``spine``).
        scope: organs whose explicit mention in the clause cancels an implied mention.
    """
    start: int
    end: int
    organs: Tuple[str, ...]
    candidates: Tuple[str, ...]
    side: Optional[str] = None
    implied: bool = False
    generic: bool = False
    scope: Tuple[str, ...] = ()


@dataclass(frozen=True)
class _Entry:
    regex: 're.Pattern'
    templates: Tuple[str, ...]   # organ names; '{side}' marks a paired organ
    implied: bool = False
    generic: bool = False
    fixed_side: Optional[str] = None
    require_side: bool = False
    scope: Tuple[str, ...] = ()
    context: Optional['re.Pattern'] = None   # the entry counts only in sentences matching it


def _entry(pattern, templates=(), *, case=False, implied=False, generic=False, fixed_side=None,
           require_side=False, scope=(), context=None):
    flags = 0 if case else re.IGNORECASE
    if isinstance(templates, str):
        templates = (templates,)
    return _Entry(re.compile(rf'\b(?:{pattern})\b', flags), tuple(templates), implied, generic,
                  fixed_side, require_side, tuple(scope),
                  re.compile(context, re.IGNORECASE) if context else None)


def resolve_side(templates, side):
    """Organ names of ``templates`` for a side (``'left'``, ``'right'``, ``'both'`` or None).

    Templates without ``{side}`` are returned as they are; names that the v1 vocabulary lacks
    (``lung_middle_lobe_left``) are dropped.
    """
    sides = ('left', 'right') if side in (None, 'both') else (side,)
    organs = []
    for t in templates:
        names = [t.format(side=s) for s in sides] if '{side}' in t else [t]
        organs.extend(n for n in names if n in _VOCAB and n not in organs)
    return tuple(organs)


_LUNG_T = ('lung_upper_lobe_{side}', 'lung_middle_lobe_{side}', 'lung_lower_lobe_{side}')
_LOWER_T = ('lung_lower_lobe_{side}',)
_UPPER_T = ('lung_upper_lobe_{side}',)
_LUNG_FINDINGS = (r'emphysem\w*|atelecta\w*|consolidat\w*|ground[- ]glass|pneumonia|pneumonitis|'
                  r'bronchiectas\w*|bronchiectatic|bronchiolitis|air-?space (?:disease|opacit\w*)|'
                  r'interstitial (?:lung )?(?:disease|thickening|changes?|opacit\w*)|tree-in-bud|'
                  r'honeycombing|mosaic attenuation|bronchial wall|peribronchial|bronchovascular|'
                  r'pulmonary edema|blebs?|bullae|bullous')


@lru_cache(maxsize=None)
def _entries():
    """The ordered lexicon. Earlier entries win a span; specific phrases come first."""
    e = _entry
    return (
        # --- spans that name no organ: technique, vessels and ducts outside the vocabulary
        e(r'portal[- ]venous phase|(?:late |early )?arterial phase|(?:portal )?venous phase|'
          r'delayed phase|nephrographic phase|excretory phase|pyelographic phase'),
        e(r'renal (?:arter(?:y|ies)|veins?|vessels?|vasculature)'),
        e(r'(?:superior|inferior) mesenteric (?:arter(?:y|ies)|veins?)|'
          r'celiac (?:axis|arter(?:y|ies)|trunk)'),
        e(r'SMA|SMV|IMA|IMV|SVC|CBD|UVJ', case=True),
        e(r'superior vena cava|(?:splenic|hepatic|gastric|gastroduodenal|cystic) arter(?:y|ies)'),
        e(r'intra-?\s*(?:and|or|/)\s*extrahepatic(?: bil\w+)?(?: duct\w*)?', 'liver'),
        e(r'common bile duct|common hepatic duct|cystic duct|choledoch\w*|'
          r'extrahepatic (?:bile |biliary )?(?:ducts?|ductal|tree)?'),
        e(r'main ?stem bronch\w*|main bronch\w*'),
        e(r'femoral (?:arter(?:y|ies)|veins?|vessels?|hernias?|lymph nodes?|canal)'),
        e(r'pulmonary veins?'),
        e(r'para-?aortic|peri-?aortic|aortocaval|retrocaval|paracaval|retroperitoneal'),
        e(r'(?:right|left) (?:lower|upper) quadrant|[RL][LU]Q'),
        e(r'ureterovesical junction|ureters?|ureteral|ureteric'),
        e(r'lymph nodes?|lymphadenopathy'),
        # --- colon before liver/spleen (hepatic/splenic flexure)
        e(r'small (?:and|or) large (?:bowel|intestines?)', ('small_bowel', 'colon')),
        e(r'hepatic flexure|splenic flexure|(?:ascending|descending|transverse|right|left) colon|'
          r'colon(?:s|ic)?|large (?:bowel|intestines?)|ca?ecum|ca?ecal|rectosigmoid|sigmoid|rectum|'
          r'rectal|colitis|proctitis|colectomy', 'colon'),
        e(r'ileoca?ecal', ('small_bowel', 'colon')),
        e(r'diverticul\w*', 'colon', implied=True, scope=GI_TRACT + ('urinary_bladder',)),
        # --- vessels
        e(r'portal (?:vein|veins|venous system|system|hypertension)|main portal|porto-?splenic|'
          r'spleno-?portal|splenic veins?|porto-?mesenteric', 'portal_vein_and_splenic_vein'),
        e(r'inferior vena cava|vena cava', 'inferior_vena_cava'),
        e(r'IVC', 'inferior_vena_cava', case=True),
        e(r'pulmonary (?:arter(?:y|ies|ial)|trunk|embol\w*|thromboembol\w*)', 'pulmonary_artery'),
        e(r'PE', 'pulmonary_artery', case=True),
        e(r'aorto-?(?:bi-?)?iliac|aortobifemoral',
          ('aorta', 'iliac_artery_left', 'iliac_artery_right')),
        e(r'aort(?:a|ic)|AAA', 'aorta'),
        e(r'iliac vessels?|iliac arter(?:y|ies) and veins?|iliac veins? and arter(?:y|ies)',
          ('iliac_artery_{side}', 'iliac_vena_{side}')),
        e(r'(?:common |external |internal )?iliac (?:arter(?:y|ies)|arterial)',
          'iliac_artery_{side}'),
        e(r'(?:common |external |internal )?iliac (?:veins?|vena|venous)', 'iliac_vena_{side}'),
        # --- heart
        e(r'heart myocardium|myocardium of the heart|myocardi(?:um|al)|myocarditis',
          'heart_myocardium'),
        e(r'heart atri(?:um|a|al)', 'heart_atrium_{side}'),
        e(r'heart ventricles?', 'heart_ventricle_{side}'),
        e(r'biventricular', ('heart_ventricle_left', 'heart_ventricle_right')),
        e(r'biatrial', ('heart_atrium_left', 'heart_atrium_right')),
        e(r'(?:lateral|third|fourth|cerebral) ventricles?|ventricular system|ventricles and sulci|'
          r'sulci|hydrocephalus|gr[ae]y[- ]white(?: matter)?|white matter|midline shift', 'brain'),
        e(r'atri(?:um|a|al)', 'heart_atrium_{side}', require_side=True),
        e(r'ventric(?:le|les|ular)', 'heart_ventricle_{side}', require_side=True),
        e(r'hearts?|cardiac|cardiomegaly|cardiomyopathy|pericardi\w*|coronar(?:y|ies)|epicardial',
          HEART),
        # --- head
        e(r'brain|cerebr\w*|cerebell\w*|intracranial', 'brain'),
        e(r'faces?|facial(?: bones?)?|maxillofacial|paranasal sinus\w*|orbits?|orbital', 'face'),
        # --- airway and upper GI
        e(r'trache\w*|central airways?|airways?', 'trachea'),
        e(r'gastro-?o?esophageal|o?esophagogastric|GE junction', ('esophagus', 'stomach')),
        e(r'GEJ', ('esophagus', 'stomach'), case=True),
        e(r'o?esophag\w*', 'esophagus'),
        e(r'hiatal hernia|hiatus hernia|hiatal', 'stomach'),
        e(r'stomach|gastric|gastritis|gastrectomy|pylor\w*|perigastric', 'stomach'),
        e(r'pancreaticoduodenectomy|whipple', ('pancreas', 'duodenum')),
        e(r'duoden\w*', 'duodenum'),
        e(r'small (?:bowel|intestines?)|jejun\w*|ileum|ileal|enteritis', 'small_bowel'),
        e(r'gastrointestinal(?: tract)?|GI tract', ('stomach', 'duodenum', 'small_bowel', 'colon'),
          generic=True),
        e(r'bowel(?: loops?)?|intestin\w*|ileus', ('small_bowel', 'colon'), generic=True),
        # --- hepatobiliary
        e(r'gall ?bladders?|gallstones?|cholelithiasis|\w*cholecyst\w*', 'gallbladder'),
        e(r'GB', 'gallbladder', case=True),
        e(r'hepatobiliary', ('liver', 'gallbladder')),
        e(r'hepatosplenomegaly', ('liver', 'spleen')),
        e(r'intrahepatic|biliary|bile ducts?', 'liver'),
        e(r'livers?|hepatic|hepato\w*|hepatitis|hepatoma|perihepatic|caudate(?: lobe)?|'
          r'porta hepatis|'
          r'couinaud|cirrho\w*', 'liver'),
        e(r'HCC', 'liver', case=True),
        e(r'segments? (?:[1-8]|VIII|VII|VI|V|IV|III|II|I)[ab]?'
          r'(?:\s*(?:and|/|,|-|to)\s*(?:[1-8]|VIII|VII|VI|V|IV|III|II|I)[ab]?\b)*',
          'liver', implied=True, scope=('liver',) + LUNG_LOBES),
        e(r'steatosis|steatotic|steatohepatitis', 'liver', implied=True,
          scope=('liver', 'pancreas')),
        # --- spleen, pancreas, adrenals, kidneys
        e(r'spleens?|splenic|spleno\w*|splenule|splenectomy|perisplenic|asplenia', 'spleen'),
        e(r'\w*pancrea\w*|uncinate(?: process)?|wirsung|IPMN', 'pancreas'),
        e(r'adrenals?(?: glands?)?|suprarenal glands?|adrenalectomy', 'adrenal_gland_{side}'),
        e(r'ureteropelvic junction|UPJ', 'kidney_{side}'),
        e(r'(?:hydro(?:uretero)?)?nephros[ie]s|nephrolith\w*|nephrocalcinosis|urolith\w*|'
          r'pelvi-?ca?l[iy]\w*|pelvocal\w*|caliectasis|calyc\w*|calic\w*|pyelectasis|pelviectasis|'
          r'collecting systems?|bosniak', 'kidney_{side}', implied=True, scope=KIDNEYS),
        e(r'kidneys?|renal|perirenal|pararenal|perinephric|nephrectomy|nephritis|nephrogram|'
          r'pyelonephritis|pyelo\w*', 'kidney_{side}'),
        e(r'urinary bladder|bladder|cystitis|cystectomy', 'urinary_bladder'),
        # --- lungs (lobes are found by _lobe_mentions before these)
        e(r'lung bases?|bases of the lungs|lower chest|(?:left|right) (?:lung )?base', _LOWER_T),
        e(r'bibasilar|bibasal|both bases', _LOWER_T, fixed_side='both'),
        e(r'basilar', _LOWER_T),
        e(r'lung ap(?:ex|ices)|apices', _UPPER_T),
        e(r'bi-?apical', _UPPER_T, fixed_side='both'),
        e(r'lingula\w*', 'lung_upper_lobe_left'),
        e(r'pleura\w*|(?:hydro|hemo)?pneumothora\w*|hemothorax|hydrothorax|empyema', _LUNG_T),
        e(r'lungs?(?: parenchyma| fields?)?|pulmonary|pulmonic', _LUNG_T, generic=True),
        e(_LUNG_FINDINGS, _LUNG_T, implied=True, scope=LUNG_LOBES),
        # --- spine (vertebral levels are found by _vertebra_mentions)
        e(r'thoraco-?lumbar junction', ('vertebrae_T12', 'vertebrae_L1')),
        e(r'thoraco-?lumbar(?: spine)?', THORACIC + LUMBAR),
        e(r'lumbo-?sacral junction', ('vertebrae_L5', 'sacrum')),
        e(r'lumbo-?sacral(?: spine)?', LUMBAR + ('sacrum',)),
        e(r'lumbar(?: spine| vertebra\w*| vertebral bod(?:y|ies)| column)?', LUMBAR),
        e(r'thoracic (?:spine|vertebra\w*|vertebral bod(?:y|ies)|spondylo\w*|kyphosis|levels?)',
          THORACIC),
        e(r'cervical (?:spine|vertebra\w*|vertebral bod(?:y|ies)|spondylo\w*|levels?)', CERVICAL),
        e(r'spine|spinal|vertebra\w*|vertebral bod(?:y|ies)|vertebral column|spinous process\w*|'
          r'spondylo\w*|kyphosis|scoliosis|kyphoscoliosis|intervertebral|dis[ck]s?|endplates?',
          VERTEBRAE, generic=True),
        # --- other bones
        e(r'sacroiliac(?: joints?)?|SI joints?', ('sacrum', 'hip_{side}')),
        e(r'sacr(?:um|al)|coccyx|coccygeal', 'sacrum'),
        e(r'shoulder girdles?', ('humerus_{side}', 'scapula_{side}', 'clavicula_{side}')),
        e(r'glenohumeral|shoulders?(?: joints?)?', ('humerus_{side}', 'scapula_{side}')),
        e(r'acromioclavicular|AC joints?', ('clavicula_{side}', 'scapula_{side}')),
        e(r'humer(?:us|i|al)', 'humerus_{side}'),
        e(r'scapula[er]?|scapular', 'scapula_{side}'),
        e(r'clavic\w*', 'clavicula_{side}'),
        e(r'(?:hip )?(?:hemi)?arthroplast\w*|hip replacements?|hip prosthes[ie]s',
          ('hip_{side}', 'femur_{side}')),
        e(r'femur|femora|femurs|femoral(?: heads?| necks?| shafts?| component)?|'
          r'(?:inter|sub)?trochanter\w*', 'femur_{side}'),
        e(r'hip bones?|hips?(?: joints?)?|ilium|ilia|iliac (?:bones?|wings?|crests?|blades?)|'
          r'ischi\w*|'
          r'pub(?:ic|is)(?: ram(?:us|i)| symphysis)?|acetabul\w*|innominate|coxarthrosis',
          'hip_{side}'),
        e(r'bony pelvis|pelvic girdle|osseous pelvis', ('hip_left', 'hip_right', 'sacrum')),
        e(r'(?<!renal )(?<!abdomen and )(?<!abdomen/)pelvis|pelvic bones?',
          ('hip_left', 'hip_right', 'sacrum'),
          context=r'\b(?:osseous|bony|bones?|fractur\w*|sacrum|sacral|hips?|femurs?|femora|'
                  r'skelet\w*|lytic|sclerotic|intact)\b'),
        e(r'bones?|osseous|bony|skelet\w*|musculoskeletal', BONES, generic=True),
        # --- muscles
        e(r'glute(?:us|al) maximus', 'gluteus_maximus_{side}'),
        e(r'glute(?:us|al) medius', 'gluteus_medius_{side}'),
        e(r'glute(?:us|al) minimus', 'gluteus_minimus_{side}'),
        e(r'glute(?:al|us)(?: muscles?| musculature)?|glutei', GLUTEAL),
        e(r'autochthon\w*(?: back muscles?)?|paraspinal(?: muscles?| musculature)?|paraspinous|'
          r'erector spinae|paravertebral muscles?|back muscles?', 'autochthon_{side}'),
        e(r'iliopsoas|psoas|iliacus', 'iliopsoas_{side}'),
    )


# --- custom matchers: lung lobes, ribs and vertebrae --------------------------------------

_LOBE_ITEM = r'(?:(?:the\s+)?(?:left|right|bilateral|both)\s+(?:lung\s+)?)?(?:upper|middle|lower)'
_LOBES = re.compile(
    rf'\b(?P<list>{_LOBE_ITEM}(?:\s*(?:,\s*and|,|and|or|/|&|-)\s*{_LOBE_ITEM})*)\s+(?:lung\s+)?'
    r'(?:lobes?|zones?|fields?)\b(?:\s+of\s+(?:the\s+)?(?P<side2>left|right|both)\s+lungs?\b)?'
    r'|\b(?P<side3>left|right)\s+(?P<zone>upper|lower)\s+lung\b',
    re.IGNORECASE)
_LOBE_ABBREV = re.compile(r'\b(RUL|RML|RLL|LUL|LLL)\b')
_ABBREV_ORGAN = {'RUL': 'lung_upper_lobe_right', 'RML': 'lung_middle_lobe_right',
                 'RLL': 'lung_lower_lobe_right', 'LUL': 'lung_upper_lobe_left',
                 'LLL': 'lung_lower_lobe_left'}

_ORDINALS = ('first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth',
             'tenth', 'eleventh', 'twelfth')
_ORD = r'(?:\d{1,2}(?:st|nd|rd|th)|' + '|'.join(_ORDINALS) + ')'
_RIB_POS = r'(?:(?:posterior|anterior|lateral|posterolateral|anterolateral)\s+)'
_RIBS = re.compile(
    rf'\b(?:(?P<side>left|right|bilateral)\s+)?{_RIB_POS}?'
    rf'(?:(?P<nums>{_ORD}(?:\s*(?:-|–|,\s*and|,|and|or|to|through|/)\s*(?:the\s+)?{_ORD})*)\s+)?'
    rf'(?:(?P<side2>left|right)\s+)?{_RIB_POS}?ribs?\b'
    r'(?:\s+(?P<nums2>\d{1,2}(?:\s*(?:-|–|,\s*and|,|and|to|through)\s*\d{1,2})*)\b)?',
    re.IGNORECASE)
_VERTEBRA = re.compile(
    r'\b(?P<a>[CTL])(?P<an>\d{1,2})(?:\s*(?:-|–|/|to|through)\s*(?P<b>[CTLS])?(?P<bn>\d{1,2}))?\b'
    r'(?![-\s]*weighted)|\bS1\b')


def _ordinal_value(token):
    token = token.lower()
    if token in _ORDINALS:
        return _ORDINALS.index(token) + 1
    return int(re.match(r'\d+', token).group())


def _number_list(text, pattern):
    """Numbers of a list such as ``7th and 8th`` or ``4-6`` (ranges expanded)."""
    numbers, pending_range = [], False
    for tok in re.finditer(rf'{pattern}|-|–|\bto\b|\bthrough\b', text, re.IGNORECASE):
        t = tok.group()
        if t in ('-', '–') or t.lower() in ('to', 'through'):
            pending_range = bool(numbers)
            continue
        n = _ordinal_value(t)
        if pending_range and numbers:
            numbers.extend(range(numbers[-1] + 1, n + 1))
        else:
            numbers.append(n)
        pending_range = False
    return numbers


def _lobe_mentions(text):
    out = []
    for m in _LOBES.finditer(text):
        if m.group('zone'):
            side = m.group('side3').lower()
            templates = _UPPER_T if m.group('zone').lower() == 'upper' else _LOWER_T
            out.append((m.start(), m.end(), templates, side))
            continue
        stated = m.group('side2')
        items = re.findall(r'(?:(left|right|bilateral|both)\s+(?:lung\s+)?)?(upper|middle|lower)',
                           m.group('list'), re.IGNORECASE)
        sides = []
        current = stated.lower() if stated else None
        for side, _ in items:
            if side:
                current = side.lower()
            sides.append(current)
        if any(s is not None for s in sides) and len(set(sides)) > 1:
            # mixed sides (``right upper and left lower lobes``): one fixed mention per item
            organs = []
            for (_, lobe), side in zip(items, sides):
                organs.extend(resolve_side((f'lung_{lobe.lower()}_lobe_{{side}}',),
                                           'both' if side in ('bilateral', 'both') else side))
            out.append((m.start(), m.end(), tuple(dict.fromkeys(organs)), 'fixed'))
            continue
        side = sides[0] if sides else None
        side = 'both' if side in ('bilateral', 'both') else side
        templates = tuple(dict.fromkeys(f'lung_{lobe.lower()}_lobe_{{side}}' for _, lobe in items))
        out.append((m.start(), m.end(), templates, side))
    for m in _LOBE_ABBREV.finditer(text):
        out.append((m.start(), m.end(), (_ABBREV_ORGAN[m.group()],), 'fixed'))
    return out


def _rib_mentions(text):
    out = []
    for m in _RIBS.finditer(text):
        side = m.group('side') or m.group('side2')
        side = side.lower() if side else None
        side = 'both' if side == 'bilateral' else side
        numbers = []
        if m.group('nums'):
            numbers = _number_list(m.group('nums'), _ORD)
        elif m.group('nums2'):
            numbers = _number_list(m.group('nums2'), r'\d{1,2}')
        numbers = [n for n in numbers if 1 <= n <= 12] or list(range(1, 13))
        out.append((m.start(), m.end(), tuple(f'rib_{{side}}_{n}' for n in numbers), side))
    return out


def _vertebra_mentions(text):
    out = []
    for m in _VERTEBRA.finditer(text):
        if m.group() == 'S1':
            out.append((m.start(), m.end(), ('sacrum',), 'fixed'))
            continue
        first = f'{m.group("a")}{int(m.group("an"))}'
        if first not in _LEVELS:
            continue
        last = first
        if m.group('bn'):
            last = f'{m.group("b") or m.group("a")}{int(m.group("bn"))}'
            if last not in _LEVELS or _LEVELS.index(last) < _LEVELS.index(first):
                last = first
        levels = _LEVELS[_LEVELS.index(first):_LEVELS.index(last) + 1]
        organs = tuple('sacrum' if lv == 'S1' else f'vertebrae_{lv}' for lv in levels)
        out.append((m.start(), m.end(), organs, 'fixed'))
    return out


# --- laterality ---------------------------------------------------------------------------

_POST_SIDE = re.compile(r'^[\s,]*(?:(bilaterally)|on both sides|on the (left|right)\b(?! side of))',
                        re.IGNORECASE)
_LOCATION_ONLY = re.compile(
    r'(?:adjacent to|abutting|near|next to|posterior to|anterior to|medial to|lateral to|'
    r'relative to|compared (?:to|with)|than(?: that of)?|displacing|indenting|to the level of)'
    r'\s+(?:the\s+)?$',
    re.IGNORECASE)


def side_in(text):
    """The side that a piece of text states: ``'left'``, ``'right'``, ``'both'`` or None."""
    words = {w.lower() for w in SIDE_WORDS.findall(text)}
    words = {'left' if w == 'lt' else 'right' if w == 'rt' else w for w in words}
    if words & {'bilateral', 'bilaterally', 'both', 'bibasilar', 'bi-basilar', 'bibasal'} or \
            {'left', 'right'} <= words:
        return 'both'
    if 'left' in words:
        return 'left'
    if 'right' in words:
        return 'right'
    return None


def _side_before(text, start, bound):
    """Side words in the few words before a mention (after the previous mention)."""
    window = text[max(bound, start - 40):start]
    # only the words that lead into the mention: stop at punctuation
    window = re.split(r'[;:.()]', window)[-1]
    return side_in(window)


def _side_within(span):
    """A side stated inside a mention (``left lung base``), else None."""
    side = side_in(span)
    return side if side in ('left', 'right') else None


def find_mentions(text):
    """All organ mentions of a sentence, in text order, with laterality resolved.

    Args:
        text: one sentence (or clause) of a report.

    Returns:
        list[OrganMention]: consume-only spans are included with empty ``organs`` so that
        callers can tell "named nothing" from "named an organ".

    Example:
        >>> [m.organs for m in find_mentions('Cyst in the left kidney.')]
        [('kidney_left',)]
    """
    taken = []   # (start, end) spans already read

    def free(s, e):
        return all(e <= ts or s >= te for ts, te in taken)

    raw = []     # (start, end, templates, side, entry or None)
    for finder in (_lobe_mentions, _rib_mentions, _vertebra_mentions):
        for s, e, templates, side in finder(text):
            if free(s, e):
                taken.append((s, e))
                raw.append((s, e, templates, side, None))
    for entry in _entries():
        if entry.context is not None and not entry.context.search(text):
            continue
        for m in entry.regex.finditer(text):
            if free(m.start(), m.end()):
                taken.append((m.start(), m.end()))
                raw.append((m.start(), m.end(), entry.templates, entry.fixed_side, entry))
    raw.sort(key=lambda r: r[0])

    mentions = []
    prev_end = 0
    for i, (s, e, templates, side, entry) in enumerate(raw):
        next_start = raw[i + 1][0] if i + 1 < len(raw) else len(text)
        stated = None
        if side == 'fixed':
            organs = templates
            stated = 'fixed'
        elif any('{side}' in t for t in templates):
            stated = side or _side_before(text, s, prev_end) or _side_within(text[s:e])
            if stated is None:
                post = _POST_SIDE.match(text[e:min(e + 30, next_start)])
                if post and not re.match(r'\s*\w', text[e + post.end():next_start]) and \
                        next_start - (e + post.end()) < 3:
                    post = None   # the side words lead into the next organ (``in both lungs``)
                if post:
                    stated = 'both' if post.group(1) or 'both' in post.group().lower() else \
                        post.group(2).lower()
            if entry is not None and entry.require_side and stated is None:
                prev_end = e
                continue
            organs = resolve_side(templates, stated)
        else:
            organs = resolve_side(templates, None)
            stated = side_in(text[max(prev_end, s - 40):s]) if entry and entry.generic else None
        candidates = organs if side == 'fixed' else resolve_side(templates, None)
        mentions.append(OrganMention(
            start=s, end=e, organs=organs, candidates=candidates,
            side=None if stated == 'fixed' else stated,
            implied=bool(entry and entry.implied), generic=bool(entry and entry.generic),
            scope=(entry.scope if entry and entry.scope else candidates)))
        prev_end = e
    return mentions


def is_location_only(text, mention):
    """Whether a mention only locates something else (``adjacent to the gallbladder``)."""
    return bool(_LOCATION_ONLY.search(text[max(0, mention.start - 40):mention.start]))
