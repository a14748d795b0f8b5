"""The built-in dataset of ctglip: synthetic full-body CT studies with organ masks and reports.

``make_phantom_dataset(out_dir, num_cases=200, seed=0)`` writes a folder in the manifest format
(``manifest.jsonl``, NIfTI images and TotalSegmentator v1 organ masks, tumour masks,
``stats.json``, ``README.txt``) that every part of the toolkit can train and evaluate on.

The anatomy model (:mod:`.anatomy`)
    A body in millimetres, RAS+ (``+x`` patient's right, ``+y`` anterior, ``+z`` superior),
    holding all 104 TotalSegmentator v1 organs: 24 vertebrae with bodies, neural arches and
    processes stacked along a curved spine, 24 ribs that leave their thoracic vertebra and wrap
    the thoracic cage down to the costal margin, five lung lobes cut from two lungs by oblique
    and horizontal fissures above a diaphragm dome, four heart chambers in a myocardium, vessels
    as tubes (aorta with arch, pulmonary trunk and branches, IVC, portal and splenic veins,
    iliac arteries and veins), abdominal and pelvic organs, muscles, the shoulder girdle, arms,
    pelvis, femurs, brain and face. Unlabelled tissue fills the rest: subcutaneous and visceral
    fat, a muscle wall, the skull, sternum, costal cartilages, spinal canal, the CT couch.
    Every organ varies per patient (shift, per-axis scale, rotation, low-order harmonic
    deformation of its radii or jitter of its centre line); every study varies the pose (a few
    degrees of rotation, a shift, habitus scaling, a smooth random warp), breathing, bowel
    loops and gas, bladder and stomach filling, arm position, contrast phase, noise level and
    the field of view (head-neck, chest, abdomen, pelvis and combinations, up to whole body),
    so a study shows a subset of the organs, as real CT does.

Appearance (:mod:`.appearance`)
    Tissue classes with Hounsfield units per contrast phase (non-contrast, arterial, portal
    venous), per-study enhancement strength and per-organ offsets, so that soft-tissue organs
    overlap in HU as in real CT; a smooth random texture field scaled per tissue; cortical
    shells of bones; bowel gas, stool and fluid; air-fluid levels in the stomach; scanner noise
    that the point-spread blur correlates; partial volume at lesion edges.

Findings (:mod:`.findings`) and reports (:mod:`.reports`)
    The 16 abnormalities of the default vocabulary over 7 organ groups, each with an imaging
    signature, graded and sized from a few millimetres up, drawn once per patient so that
    follow-up studies agree; masses of liver, pancreas and kidney are tumours with voxel masks.
    Reports have a header, a FINDINGS section organ by organ in varying order with several
    phrasings per statement and measurements, and a numbered IMPRESSION; they mention only
    organs inside the field of view.

How it differs from real CT
    Organs are smooth geometric shapes, not segmentations of real anatomy, and their contacts
    are resolved by painting order, so borders are cleaner than in real scans; textures are
    random fields rather than tissue structure; there are no beam-hardening, streak, metal or
    motion artefacts; lung vessels are blobs, not a branching tree; lesions are round or
    lobulated blobs; reports come from templates. The phantom is for building and testing the
    toolkit, not for conclusions about real images.
"""
from .dataset import DEFAULT_FOV_MM, DEFAULT_SPACING, TINY, make_phantom_dataset, plan_dataset
from .generator import FIELDS_OF_VIEW, StudyPlan, render_study

__all__ = [
    'make_phantom_dataset', 'plan_dataset', 'render_study', 'StudyPlan', 'FIELDS_OF_VIEW',
    'DEFAULT_SPACING', 'DEFAULT_FOV_MM', 'TINY'
]
