"""Radiology reports for phantom studies, written like real ones.

A report has a header (examination, history, technique, comparison), a FINDINGS section that
goes region by region and organ by organ in a partly random order, with several phrasings for
every normal statement and every finding, measurements and locations (liver segment, kidney
pole, pancreatic part, lung lobe), and a numbered IMPRESSION. Only organs inside the field of
view are mentioned. Every FINDINGS sentence is also recorded under each organ it speaks about,
which gives the manifest's ``findings`` field.
"""
from dataclasses import dataclass, field

from ..organs import organ_vocabulary, readable_name

__all__ = ['ReportInput', 'write_report', 'LesionReport']

_ORGAN_ORDER = organ_vocabulary('totalseg_v1')
_COUNT = {2: 'Two', 3: 'Three', 4: 'Four'}
_LOBES = ('lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right',
          'lung_upper_lobe_left', 'lung_lower_lobe_left')


@dataclass
class LesionReport:
    """What the report says about one finding of one organ (several lesions grouped)."""
    name: str
    organ: str
    sizes: list = field(default_factory=list)  # mm, largest first (focal)
    location: str = ''  # of the largest lesion
    grade: str = ''
    value: float = 0.0  # a measurement of diffuse findings (mm, cm or HU)
    params: dict = field(default_factory=dict)


@dataclass
class ReportInput:
    """Everything the report writer needs about one study."""
    fov: str
    phase: str
    visible: set
    findings: list  # LesionReport
    spleen_cm: float = 0.0
    bladder: str = 'partially distended'
    arms_up: bool = True


def _mm(d):
    return f'{d / 10:.1f} cm' if d >= 30 else f'{int(round(d))} mm'


def _cap(s):
    return s[:1].upper() + s[1:]


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _side(organ):
    return 'right' if organ.endswith('right') else 'left'


def _lobe(organ):
    return readable_name(organ).replace(' of the ', ' ').replace('lobe right lung', 'lobe').replace(
        'lobe left lung', 'lobe').replace('upper lobe', 'upper lobe').strip()


def _lobe_name(organ):
    part = organ.split('_')[1]
    return f'{_side(organ)} {part} lobe'


# ---------------------------------------------------------------------------- abnormal text
def _abnormal(rng, f, phase):
    """Sentences ``[(text, organs)]`` and an impression line for one grouped finding."""
    n = len(f.sizes)
    size = _mm(f.sizes[0]) if f.sizes else ''
    loc = f.location
    organ = f.organ
    name = f.name
    contrast = phase != 'non-contrast'
    if name == 'liver cyst':
        if n == 1:
            s = _pick(rng, [
                f'A {size} hypodense lesion in {loc} of the liver has fluid attenuation, '
                'consistent with a simple cyst.',
                f'There is a {size} well-circumscribed cyst in hepatic {loc}.',
                f'{_cap(size)} simple hepatic cyst in {loc}.',
                f'Hepatic {loc} contains a {size} fluid-density lesion, likely a cyst.'
            ])
        else:
            s = _pick(rng, [
                f'{_COUNT.get(n, "Several")} hepatic cysts, the largest measuring {size} in {loc}.',
                f'Multiple simple liver cysts are present, up to {size} ({loc}).'
            ])
        imp = _pick(rng, [
            'Simple hepatic cyst' + ('s.' if n > 1 else '.'), 'Benign-appearing hepatic cyst' +
            ('s' if n > 1 else '') + ', no follow-up needed.'
        ])
    elif name == 'liver mass':
        hyper = f.params.get('kind') == 'hyper'
        adj = ('hyperenhancing' if contrast else 'hyperdense') if hyper else _pick(
            rng, ['hypodense', 'hypoattenuating'])
        s = _pick(rng, [
            f'A {size} {adj} mass in {loc} of the liver.',
            f'There is an ill-defined {size} {adj} lesion in hepatic {loc}, '
            'suspicious for neoplasm.',
            f'{_cap(size)} {adj} solid lesion in {loc}, concerning for malignancy.'
        ])
        if n > 1:
            s += f' {_COUNT.get(n, "Several")} similar lesions in total are seen.'
        imp = _pick(rng, [
            f'{_cap(size)} hepatic mass in {loc}, suspicious for neoplasm; MRI recommended.',
            f'{_cap(adj)} liver lesion ({size}), indeterminate; '
            'further evaluation with multiphasic MRI.'
        ])
    elif name == 'hepatic steatosis':
        s = _pick(rng, [
            f'The liver is diffusely hypoattenuating, '
            f'consistent with {f.grade} fatty infiltration.',
            f'Decreased attenuation of the liver compatible with {f.grade} hepatic steatosis.',
            f'{_cap(f.grade)} diffuse hepatic steatosis.'
        ])
        if not contrast and rng.random() < 0.5:
            s += f' Mean hepatic attenuation is {int(round(f.value))} HU.'
        imp = f'{_cap(f.grade)} hepatic steatosis.'
    elif name == 'liver calcification':
        s = _pick(rng, [
            f'A {size} punctate calcification in {loc} of the liver, likely a calcified granuloma.',
            f'{_cap(size)} calcified focus in hepatic {loc}.',
            f'Small calcified granuloma in {loc} of the liver.'
        ])
        imp = 'Incidental hepatic calcification, likely sequela of prior granulomatous disease.'
    elif name == 'gallstone':
        if n == 1:
            s = _pick(rng, [
                f'A {size} calcified gallstone is present in the gallbladder lumen.',
                f'Cholelithiasis: a single {size} gallstone.',
                f'There is a {size} dependent radiopaque stone in the gallbladder.'
            ])
        else:
            s = _pick(rng, [
                f'Cholelithiasis: {_COUNT.get(n, "several").lower()} calcified gallstones, '
                f'the largest measuring {size}.',
                f'Several dependent gallstones, up to {size}.'
            ])
        imp = _pick(rng,
                    ['Cholelithiasis.', 'Cholelithiasis without evidence of acute cholecystitis.'])
    elif name == 'gallbladder wall thickening':
        t = int(round(f.value))
        s = _pick(rng, [
            f'The gallbladder wall is thickened, measuring {t} mm.',
            f'Diffuse gallbladder wall thickening up to {t} mm.',
            f'{_cap(f.grade)} gallbladder wall thickening ({t} mm).'
        ])
        imp = 'Gallbladder wall thickening; correlate clinically for cholecystitis.'
    elif name == 'splenomegaly':
        s = _pick(rng, [
            f'The spleen is enlarged, measuring {f.value:.1f} cm in craniocaudal length.',
            f'Splenomegaly with a craniocaudal span of {f.value:.1f} cm.',
            f'{_cap(f.grade)} splenomegaly ({f.value:.1f} cm).'
        ])
        imp = f'{_cap(f.grade)} splenomegaly.'
    elif name == 'splenic cyst':
        s = _pick(rng, [
            f'A {size} simple cyst in the {loc} of the spleen.',
            f'There is a {size} hypodense, fluid-attenuation lesion in the spleen, likely a cyst.',
            f'{_cap(size)} splenic cyst.'
        ])
        imp = 'Splenic cyst.'
    elif name == 'pancreatic mass':
        s = _pick(rng, [
            f'A {size} hypoattenuating mass in the pancreatic {loc}.',
            f'There is an ill-defined {size} hypodense lesion in the {loc} of the pancreas, '
            'concerning for neoplasm.',
            f'{_cap(size)} hypoenhancing pancreatic {loc} mass.'
        ])
        imp = _pick(rng, [
            f'{_cap(size)} pancreatic {loc} mass, concerning for adenocarcinoma; '
            'recommend pancreatic protocol CT or MRI.',
            f'Pancreatic {loc} mass ({size}), suspicious for malignancy.'
        ])
    elif name == 'pancreatic duct dilation':
        d = int(round(f.value))
        s = _pick(rng, [
            f'The main pancreatic duct is dilated, measuring {d} mm.',
            f'Dilation of the main pancreatic duct to {d} mm.',
            f'Pancreatic ductal dilatation up to {d} mm.'
        ])
        imp = 'Dilated main pancreatic duct.'
    elif name in ('kidney cyst', 'kidney stone', 'renal mass', 'hydronephrosis'):
        side = _side(organ)
        if name == 'kidney cyst':
            s = _pick(rng, [
                f'A {size} simple cyst in the {loc} of the {side} kidney.',
                f'{_cap(side)} renal cyst measuring {size} in the {loc}.',
                f'There is a {size} fluid-attenuation lesion in the {side} kidney, '
                'consistent with a simple cyst.'
            ])
            if n > 1:
                s += f' An additional smaller {side} renal cyst is present.'
            imp = _pick(rng, [f'Simple {side} renal cyst.', f'{_cap(side)} renal cyst, benign.'])
        elif name == 'kidney stone':
            if loc == 'renal pelvis':
                s = f'There is a {size} calculus in the {side} renal pelvis.'
            else:
                s = _pick(rng, [
                    f'A {size} nonobstructing calculus in the {loc} of the {side} kidney.',
                    f'{_cap(side)} nephrolithiasis: {size} stone in the {loc}.',
                    f'{_cap(size)} {side} renal calculus in the {loc}.'
                ])
            if n > 1:
                s += f' {_COUNT.get(n, "Several")} {side} renal calculi in total.'
            imp = _pick(
                rng, [f'{_cap(side)} nephrolithiasis.', f'Nonobstructing {side} renal calculus.'])
        elif name == 'renal mass':
            s = _pick(rng, [
                f'A {size} heterogeneous solid mass arises from the {loc} of the {side} kidney, '
                'suspicious for renal cell carcinoma.',
                f'There is a {size} solid {side} renal lesion in the {loc}, '
                'concerning for neoplasm.'
            ])
            imp = f'{_cap(size)} solid {side} renal mass, suspicious for renal cell carcinoma.'
        else:
            ap = int(round(f.value))
            s = _pick(rng, [
                f'{_cap(f.grade)} {side} hydronephrosis.',
                f'There is {f.grade} dilatation of the {side} renal collecting system.',
                f'The {side} kidney shows {f.grade} hydronephrosis with a renal pelvis of {ap} mm.'
            ])
            imp = f'{_cap(f.grade)} {side} hydronephrosis.'
    elif name == 'lung nodule':
        kind = 'solid' if f.params.get('solid', True) else 'ground-glass'
        lobe = _lobe_name(organ)
        s = _pick(rng, [
            f'A {size} {kind} nodule in the {lobe}.',
            f'There is a {size} {kind} pulmonary nodule in the {lobe}.',
            f'{_cap(lobe)} {kind} nodule measuring {size}.'
        ])
        if n > 1:
            s += ' A second smaller nodule is seen in the same lobe.'
        imp = _pick(rng, [
            f'{_cap(size)} {lobe} pulmonary nodule; follow-up per Fleischner guidelines.',
            f'{_cap(kind)} pulmonary nodule in the {lobe} ({size}).'
        ])
    elif name == 'adrenal nodule':
        side = _side(organ)
        s = _pick(rng, [
            f'A {size} nodule in the {side} adrenal gland.',
            f'{_cap(side)} adrenal nodule measuring {size}.',
            f'There is a {size} {side} adrenal nodule.'
        ])
        if f.params.get('lipid') and phase == 'non-contrast':
            s += ' It measures below 10 HU, consistent with a lipid-rich adenoma.'
        imp = _pick(rng, [
            f'{_cap(side)} adrenal nodule, likely adenoma.', f'{_cap(size)} {side} adrenal nodule.'
        ])
    elif name == 'aortic calcification':
        s = _pick(rng, [
            'Atherosclerotic calcification of the aorta.', 'Scattered aortic calcifications.',
            'Mild calcified atherosclerotic plaque of the aorta.'
        ])
        imp = ''
    else:  # pragma: no cover - every finding has text
        raise KeyError(name)
    return s, imp


def _emphysema(rng, fs):
    f = fs[0]
    lobes = [x.organ for x in fs]
    if f.params.get('pattern') == 'upper':
        s = _pick(rng, [
            f'{_cap(f.grade)} centrilobular emphysema, upper lobe predominant.',
            f'{_cap(f.grade)} emphysema in both upper lobes.',
            f'Upper lobe predominant centrilobular emphysema, {f.grade}.'
        ])
    else:
        s = _pick(rng, [
            f'{_cap(f.grade)} diffuse panlobular emphysema.',
            f'Diffuse {f.grade} emphysematous changes of both lungs.',
            f'{_cap(f.grade)} emphysema throughout the lungs.'
        ])
    return s, lobes, f'{_cap(f.grade)} emphysema.'


# ---------------------------------------------------------------------------- normal text
def _normal_sentences(key, rng, ctx, vis):
    """Normal statements ``[(text, organs)]`` for one report topic about the organs in ``vis``."""
    ordered = [o for o in _ORGAN_ORDER if o in vis]  # never iterate a set: its order varies
    pick = lambda opts: _pick(rng, opts)  # noqa: E731
    contrast = ctx.phase != 'non-contrast'
    if key == 'liver':
        return [(pick([
            'The liver is normal in size and attenuation without focal lesion.',
            'The liver is unremarkable.', 'No focal hepatic lesion.',
            'Normal hepatic contour and attenuation.',
            'The liver is normal in size with homogeneous ' +
            ('enhancement.' if contrast else 'attenuation.')
        ]), ['liver'])]
    if key == 'gallbladder':
        return [(pick([
            'The gallbladder is unremarkable.', 'No gallstones or gallbladder wall thickening.',
            'Gallbladder is normal.',
            'The gallbladder is partially distended without radiopaque stones.'
        ]), ['gallbladder'])]
    if key == 'spleen':
        opts = ['The spleen is normal in size.', 'Spleen is unremarkable.', 'No splenomegaly.']
        if ctx.spleen_cm:
            opts.append(f'The spleen measures {ctx.spleen_cm:.1f} cm' +
                        (', within normal limits.' if ctx.spleen_cm <= 12.0 else '.'))
        return [(pick(opts), ['spleen'])]
    if key == 'pancreas':
        return [(pick([
            'The pancreas is unremarkable.', 'No pancreatic mass or ductal dilation.',
            'Normal pancreatic ' + ('enhancement' if contrast else 'attenuation') +
            ' without focal lesion.', 'The pancreas is normal in size and contour.'
        ]), ['pancreas'])]
    if key == 'adrenal':
        organs = [o for o in ('adrenal_gland_right', 'adrenal_gland_left') if o in vis]
        if len(organs) == 2:
            return [(pick([
                'The adrenal glands are unremarkable.', 'No adrenal nodules.',
                'Bilateral adrenal glands are normal.'
            ]), organs)]
        return [(pick(
            [f'The {_side(o)} adrenal gland is normal.',
             f'Unremarkable {_side(o)} adrenal gland.']), [o]) for o in organs]
    if key == 'kidney':
        organs = [o for o in ('kidney_right', 'kidney_left') if o in vis]
        if len(organs) == 2:
            opts = [
                'The kidneys are normal in size without hydronephrosis or calculi.',
                'No renal stones or hydronephrosis.', 'Kidneys are unremarkable.'
            ]
            if contrast:
                opts.append('The kidneys enhance symmetrically without focal lesion.')
            return [(pick(opts), organs)]
        return [(pick([
            f'The {_side(o)} kidney is unremarkable.',
            f'Normal {_side(o)} kidney without hydronephrosis.'
        ]), [o]) for o in organs]
    if key == 'lung':
        organs = [o for o in _LOBES if o in vis]
        if ctx.fov == 'head_neck':
            return [(pick(['The visualized lung apices are clear.',
                           'The imaged lung apices are unremarkable.']), organs)]
        only_bases = all('lower' in o or 'middle' in o for o in organs)
        if only_bases or not ctx.chest:
            return [(pick([
                'The visualized lung bases are clear.', 'The lung bases are clear.',
                'No consolidation or effusion at the lung bases.'
            ]), organs)]
        out = [(pick([
            'The lungs are clear.', 'No focal consolidation, pleural effusion or pneumothorax.',
            'The lungs are well aerated and clear.'
        ]), organs)]
        if rng.random() < 0.6:
            out.append((pick(['No suspicious pulmonary nodules.',
                              'No pulmonary mass or nodule.']), organs))
        return out
    if key == 'heart':
        organs = [o for o in ordered if o.startswith('heart_')]
        return [(pick([
            'The heart is normal in size without pericardial effusion.', 'Heart size is normal.',
            'Cardiac size within normal limits. No pericardial effusion.',
            'The cardiac chambers are normal in size.'
        ]), organs)]
    if key == 'aorta':
        region = 'thoracic' if ctx.chest else 'abdominal'
        return [(pick([
            f'The {region} aorta is normal in caliber.', 'No aortic aneurysm.',
            f'Normal caliber of the {region} aorta.'
        ]), ['aorta'])]
    if key == 'pulmonary_artery':
        opts = [
            'The main pulmonary artery is normal in caliber.',
            'The pulmonary trunk is not enlarged.'
        ]
        if contrast:
            opts.append('No central pulmonary embolism.')
        return [(pick(opts), ['pulmonary_artery'])]
    if key == 'inferior_vena_cava':
        return [(pick(['The IVC is unremarkable.',
                       'The inferior vena cava is normal in caliber.']), ['inferior_vena_cava'])]
    if key == 'portal_vein_and_splenic_vein':
        return [(pick([
            'The portal vein is patent.', 'Patent portal and splenic veins.',
            'The portal venous system is unremarkable.'
        ]), ['portal_vein_and_splenic_vein'])]
    if key == 'iliac':
        organs = [
            o for o in ('iliac_artery_left', 'iliac_artery_right', 'iliac_vena_left',
                        'iliac_vena_right') if o in vis
        ]
        return [(pick([
            'The iliac vessels are unremarkable.', 'Iliac arteries and veins are normal in caliber.'
        ]), organs)]
    if key == 'esophagus':
        return [(pick([
            'The esophagus is unremarkable.', 'No esophageal wall thickening.',
            'The esophagus is normal in caliber.'
        ]), ['esophagus'])]
    if key == 'trachea':
        return [(pick([
            'The trachea and central airways are patent.', 'The trachea is midline and patent.',
            'The central airways are clear.'
        ]), ['trachea'])]
    if key == 'stomach':
        return [(pick([
            'The stomach is unremarkable.', 'The stomach is normal without wall thickening.',
            'Unremarkable stomach.'
        ]), ['stomach'])]
    if key == 'duodenum':
        return [(pick(['The duodenum is unremarkable.', 'Normal duodenal sweep.']), ['duodenum'])]
    if key == 'bowel':
        organs = [o for o in ('small_bowel', 'colon') if o in vis]
        out = []
        if 'small_bowel' in organs:
            out.append((pick([
                'The small bowel is normal in caliber without obstruction.',
                'No small bowel dilatation.', 'Small bowel loops are unremarkable.'
            ]), ['small_bowel']))
        if 'colon' in organs:
            out.append((pick([
                'The colon is unremarkable.', 'Normal colonic caliber with stool.',
                'No colonic wall thickening.'
            ]), ['colon']))
        if len(organs) == 2 and rng.random() < 0.5:
            out = [(pick([
                'No bowel obstruction. The small bowel and colon are normal in caliber.',
                'The small and large bowel are unremarkable.'
            ]), organs)]
        return out
    if key == 'urinary_bladder':
        return [(pick([
            'The urinary bladder is unremarkable.',
            f'The bladder is {ctx.bladder} without wall thickening.', 'Normal urinary bladder.'
        ]), ['urinary_bladder'])]
    if key == 'brain':
        out = [(pick([
            'No acute intracranial hemorrhage, mass effect or midline shift.',
            'The brain parenchyma is normal in attenuation.',
            'Gray-white matter differentiation is preserved.'
        ]), ['brain'])]
        if rng.random() < 0.6:
            out.append(
                (pick(['The ventricles and sulci are normal in size for age.',
                       'No hydrocephalus.']), ['brain']))
        return out
    if key == 'face':
        return [(pick([
            'The visualized paranasal sinuses are clear.',
            'The orbits and facial bones are unremarkable.',
            'The visualized paranasal sinuses and orbits are unremarkable.'
        ]), ['face'])]
    if key.startswith('spine_'):
        region = key.split('_')[1]
        prefix = {
            'cervical': 'vertebrae_C',
            'thoracic': 'vertebrae_T',
            'lumbar': 'vertebrae_L'
        }[region]
        organs = [o for o in ordered if o.startswith(prefix)]
        return [(pick([
            f'The {region} spine shows normal alignment and vertebral body heights.',
            f'No acute fracture of the {region} spine.',
            f'No suspicious osseous lesion of the {region} spine.',
            f'Vertebral body heights of the {region} spine are maintained.'
        ]), organs)]
    if key == 'ribs':
        organs = [o for o in ordered if o.startswith('rib_')]
        return [(pick(['No acute rib fracture.', 'The visualized ribs are intact.']), organs)]
    if key == 'pelvis_bones':
        organs = [
            o for o in ('sacrum', 'hip_left', 'hip_right', 'femur_left', 'femur_right') if o in vis
        ]
        return [(pick([
            'The bony pelvis and hip joints are unremarkable.', 'The sacrum and pelvis are intact.',
            'No acute osseous abnormality of the pelvis or proximal femurs.'
        ]), organs)]
    if key == 'shoulders':
        organs = [o for o in ordered if o.startswith(('scapula', 'clavicula', 'humerus'))]
        return [(pick([
            'The visualized shoulder girdles are unremarkable.',
            'The clavicles, scapulae and proximal humeri are intact.'
        ]), organs)]
    if key == 'muscles':
        out = []
        for prefix, opts in (('autochthon', [
                'The paraspinal muscles are unremarkable.', 'Normal paraspinal musculature.'
        ]), ('iliopsoas',
             ['The iliopsoas muscles are symmetric.', 'No psoas abnormality.'
              ]), ('gluteus',
                   ['The gluteal muscles are symmetric.', 'Unremarkable gluteal musculature.'])):
            organs = [o for o in ordered if o.startswith(prefix)]
            if organs and rng.random() < 0.5:
                out.append((pick(opts), organs))
        return out
    raise KeyError(key)


# Report sections: (header, [topic keys], topic -> organs it needs, probability to mention).
_SECTIONS = (
    ('BRAIN', ['brain', 'face']),
    ('LUNGS AND AIRWAYS', ['trachea', 'lung']),
    ('HEART AND MEDIASTINUM', ['heart', 'aorta_chest', 'pulmonary_artery', 'esophagus']),
    ('HEPATOBILIARY', ['liver', 'gallbladder']),
    ('SPLEEN', ['spleen']),
    ('PANCREAS', ['pancreas']),
    ('ADRENAL GLANDS', ['adrenal']),
    ('KIDNEYS AND URINARY BLADDER', ['kidney', 'urinary_bladder']),
    ('GASTROINTESTINAL TRACT', ['stomach', 'duodenum', 'bowel']),
    ('VESSELS', ['aorta_abdomen', 'inferior_vena_cava', 'portal_vein_and_splenic_vein', 'iliac']),
    ('BONES AND SOFT TISSUES', [
        'spine_cervical', 'spine_thoracic', 'spine_lumbar', 'ribs', 'pelvis_bones', 'shoulders',
        'muscles'
    ]),
)
_TOPIC_ORGANS = {
    'brain': ('brain', ),
    'face': ('face', ),
    'trachea': ('trachea', ),
    'lung':
    _LOBES,
    'heart': ('heart_myocardium', 'heart_atrium_left', 'heart_ventricle_left', 'heart_atrium_right',
              'heart_ventricle_right'),
    'aorta_chest': ('aorta', ),
    'aorta_abdomen': ('aorta', ),
    'pulmonary_artery': ('pulmonary_artery', ),
    'esophagus': ('esophagus', ),
    'liver': ('liver', ),
    'gallbladder': ('gallbladder', ),
    'spleen': ('spleen', ),
    'pancreas': ('pancreas', ),
    'adrenal': ('adrenal_gland_right', 'adrenal_gland_left'),
    'kidney': ('kidney_right', 'kidney_left'),
    'urinary_bladder': ('urinary_bladder', ),
    'stomach': ('stomach', ),
    'duodenum': ('duodenum', ),
    'bowel': ('small_bowel', 'colon'),
    'inferior_vena_cava': ('inferior_vena_cava', ),
    'portal_vein_and_splenic_vein': ('portal_vein_and_splenic_vein', ),
    'iliac': ('iliac_artery_left', 'iliac_artery_right', 'iliac_vena_left', 'iliac_vena_right'),
    'spine_cervical':
    tuple(f'vertebrae_C{i}' for i in range(1, 8)),
    'spine_thoracic':
    tuple(f'vertebrae_T{i}' for i in range(1, 13)),
    'spine_lumbar':
    tuple(f'vertebrae_L{i}' for i in range(1, 6)),
    'ribs':
    tuple(f'rib_{s}_{i}' for s in ('left', 'right') for i in range(1, 13)),
    'pelvis_bones': ('sacrum', 'hip_left', 'hip_right', 'femur_left', 'femur_right'),
    'shoulders': ('scapula_left', 'scapula_right', 'clavicula_left', 'clavicula_right',
                  'humerus_left', 'humerus_right'),
    'muscles': ('autochthon_left', 'autochthon_right', 'iliopsoas_left', 'iliopsoas_right',
                'gluteus_maximus_left', 'gluteus_maximus_right', 'gluteus_medius_left',
                'gluteus_medius_right', 'gluteus_minimus_left', 'gluteus_minimus_right'),
}
# Topics about the abnormality-vocabulary organs are always reported when visible.
_ALWAYS = {'liver', 'gallbladder', 'spleen', 'pancreas', 'adrenal', 'kidney', 'lung', 'brain'}
_MENTION_P = {
    'face': 0.6,
    'trachea': 0.6,
    'heart': 0.9,
    'aorta_chest': 0.7,
    'aorta_abdomen': 0.7,
    'pulmonary_artery': 0.5,
    'esophagus': 0.5,
    'urinary_bladder': 0.9,
    'stomach': 0.7,
    'duodenum': 0.3,
    'bowel': 0.85,
    'inferior_vena_cava': 0.3,
    'portal_vein_and_splenic_vein': 0.5,
    'iliac': 0.3,
    'spine_cervical': 0.8,
    'spine_thoracic': 0.7,
    'spine_lumbar': 0.8,
    'ribs': 0.5,
    'pelvis_bones': 0.7,
    'shoulders': 0.4,
    'muscles': 0.5
}
_EXAM = {
    'head_neck': 'CT head and neck',
    'neck_chest': 'CT neck and chest',
    'chest': 'CT chest',
    'chest_abdomen': 'CT chest and abdomen',
    'abdomen': 'CT abdomen',
    'abdomen_pelvis': 'CT abdomen and pelvis',
    'chest_abdomen_pelvis': 'CT chest, abdomen and pelvis',
    'pelvis': 'CT pelvis',
    'whole_body': 'CT whole body (vertex to thighs)'
}
_HISTORY = ('Abdominal pain.', 'Staging.', 'Follow-up.', 'Cough.', 'Weight loss.', 'Trauma.',
            'Fever of unknown origin.', 'Shortness of breath.', 'Hematuria.', 'Headache.',
            'Elevated liver enzymes.', 'Screening.', 'Flank pain.', 'Known malignancy, restaging.')


class _Ctx:

    def __init__(self, inp):
        self.visible = inp.visible
        self.phase = inp.phase
        self.spleen_cm = inp.spleen_cm
        self.bladder = inp.bladder
        self.fov = inp.fov
        # the chest is imaged (not only the lung bases at the top of an abdominal study)
        self.chest = 'chest' in inp.fov or inp.fov == 'whole_body'


def write_report(rng, inp):
    """Write the report of one study.

    Args:
        rng: the study's report generator.
        inp: :class:`ReportInput`.

    Returns:
        tuple: ``(report, findings)`` with ``findings = {organ: [sentence, ...]}`` over the
        FINDINGS section (normal statements included), restricted to visible organs.
    """
    ctx = _Ctx(inp)
    vis = inp.visible
    by_topic = {}
    emph = [f for f in inp.findings if f.name == 'emphysema']
    for f in inp.findings:
        if f.name == 'emphysema':
            continue
        topic = next(t for t, organs in _TOPIC_ORGANS.items()
                     if f.organ in organs and t not in ('aorta_abdomen', ))
        if f.organ == 'aorta':
            topic = 'aorta_abdomen' if any(o in vis for o in ('kidney_left', 'kidney_right',
                                                              'liver')) else 'aorta_chest'
        by_topic.setdefault(topic, []).append(f)
    if emph:
        by_topic.setdefault('lung', [])

    sections, impressions = [], []
    order = list(_SECTIONS)
    abdominal = order[3:9]
    if rng.random() < 0.5:  # radiologists differ in the order of the abdominal organs
        perm = rng.permutation(len(abdominal))
        order[3:9] = [abdominal[i] for i in perm]
    findings = {}
    for header, topics in order:
        sentences = []
        for topic in topics:
            organs = [o for o in _TOPIC_ORGANS[topic] if o in vis]
            if not organs:
                continue
            if topic == 'aorta_chest' and not ctx.chest or topic == 'aorta_abdomen' and ctx.chest:
                if topic not in by_topic:
                    continue
            abn = by_topic.get(topic, [])
            if not abn and topic not in _ALWAYS and rng.random() > _MENTION_P.get(topic, 1.0):
                continue
            topic_sents = []
            abnormal_organs = set()
            if topic == 'lung' and emph:
                s, lobes, imp = _emphysema(rng, emph)
                topic_sents.append((s, [o for o in lobes if o in vis]))
                impressions.append(imp)
                abnormal_organs.update(lobes)
            for f in sorted(abn, key=lambda f: -(f.sizes[0] if f.sizes else 0)):
                s, imp = _abnormal(rng, f, inp.phase)
                topic_sents.append((s, [f.organ]))
                abnormal_organs.add(f.organ)
                if imp:
                    impressions.append(imp)
            key = topic.replace('aorta_chest', 'aorta').replace('aorta_abdomen', 'aorta')
            if not abnormal_organs:
                normals = _normal_sentences(key, rng, ctx, vis)
            elif topic == 'lung':
                normals = [(_pick(rng, [
                    'The lungs are otherwise clear.',
                    'Otherwise, no focal consolidation or pleural effusion.',
                    'No pleural effusion or pneumothorax.'
                ]), organs)]
            elif topic in ('kidney', 'adrenal', 'bowel', 'iliac'):
                rest = set(vis) - abnormal_organs
                normals = _normal_sentences(key, rng, ctx, rest) if set(organs) & rest else []
            else:
                normals = []
            for s, organs_s in normals:
                organs_s = [o for o in organs_s if o in vis]
                if organs_s:
                    topic_sents.append((s, organs_s))
            sentences.extend(topic_sents)
        if not sentences:
            continue
        for s, organs in sentences:
            for o in organs:
                findings.setdefault(o, []).append(s)
        sections.append((header, [s for s, _ in sentences]))

    style = int(rng.integers(3))
    lines = [
        f'EXAMINATION: {_EXAM[inp.fov]} ' +
        ('without intravenous contrast.'
         if inp.phase == 'non-contrast' else f'with intravenous contrast ({inp.phase} phase).'),
        f'CLINICAL HISTORY: {_pick(rng, _HISTORY)}',
        'TECHNIQUE: Axial images with multiplanar reformations.',
        'COMPARISON: ' + _pick(rng, ['None.', 'None available.', 'Prior study not available.']), '',
        'FINDINGS:'
    ]
    for header, sents in sections:
        text = ' '.join(sents)
        if style == 0:
            lines.append(f'{header.capitalize()}: {text}')
        elif style == 1:
            lines.append(f'{header}: {text}')
        else:
            lines.append(text)
    lines += ['', 'IMPRESSION:']
    if impressions:
        seen = []
        for imp in impressions:
            if imp not in seen:
                seen.append(imp)
        lines += [f'{i + 1}. {imp}' for i, imp in enumerate(seen)]
    else:
        region = _EXAM[inp.fov].replace('CT ', '').replace(' (vertex to thighs)', '')
        lines.append(
            _pick(rng, [
                f'No acute abnormality in the {region}.', 'No acute findings.',
                f'Unremarkable CT of the {region}.'
            ]))
    return '\n'.join(lines), findings
