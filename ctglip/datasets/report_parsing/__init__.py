"""Report structuring: free-text CT reports -> organ-level findings, status and abnormalities.

CT-GLIP pairs each organ with the sentences of the report that talk about it. A report
structurer (registry ``REPORT_STRUCTURERS``) returns, for one report::

    dict(findings={organ: [sentence, ...]},           # TotalSegmentator v1 organ names
         status={organ: 'normal' | 'abnormal'},
         abnormalities={organ: [abnormality name, ...]})  # the abnormality vocabulary's names

``RuleBasedReportStructurer`` does this with rules and no model:

1. **Sentences** (:mod:`.sentences`): section headers (``FINDINGS:``, ``IMPRESSION``) are
   removed, non-finding sections (technique, comparison, indication, history) skipped, organ
   headers (``LIVER:``) kept as context, numbered lists, wrapped lines, abbreviations
   (``approx.``) and decimals (``1.5 cm``) handled.
2. **Organs** (:mod:`.lexicon`): a lexicon over all 104 v1 organs with synonyms and adjectives
   (hepatic, renal, splenic, pulmonary, cholecyst-, ...), laterality (left/right, bilateral,
   both, plurals), lung lobes (``RLL``, ``right lower lobe``, ``lingula``, ``lung bases``),
   vertebral levels and ranges (``L4-L5``, ``T11 through L2``), ribs (``left 7th and 8th
   ribs``), vessels, muscles and bones; spans such as ``splenic vein``, ``hepatic flexure`` or
   ``portal venous phase`` are read as what they are.
3. **Status** (:mod:`.findings`): a clause is abnormal for an organ when it holds a finding term
   of that organ that is not negated (NegEx-style pre/post triggers and pseudo-negations:
   ``no change in the 12 mm nodule`` stays abnormal). No finding term means normal.
4. **Abnormalities** (:func:`.findings.vocabulary_names`): finding kinds map to the 16 names per
   organ group (cyst/simple/fluid attenuation -> cyst; mass/tumor/solid/enhancing -> mass;
   steatosis/fatty; calcification/granuloma; stone/calculus/-lithiasis; hydronephrosis/
   pelvicalyceal dilation; nodule; emphysema/bullae; adenoma/nodule of the adrenal;
   enlarged spleen; dilated pancreatic duct) and to CT-RATE's 18 chest findings (cardiomegaly,
   pericardial and pleural effusion, coronary and arterial wall calcification, hiatal hernia,
   lymphadenopathy, atelectasis, consolidation, opacity, fibrotic sequelae, mosaic attenuation,
   peribronchial and interlobular septal thickening, bronchiectasis, medical material); the
   names kept are those the abnormality vocabulary (``abnormality_vocab``, default:
   ``default``) gives the organ. An abnormal finding outside the vocabulary leaves the organ
   abnormal with no name. Findings a report gives without an organ word (``Mediastinal
   lymphadenopathy.``, ``Sternotomy wires.``) go to the organs of their group when the
   vocabulary has them.
5. **Organ vocabulary**: the rules read v1 organs; with another organ vocabulary a v1 organ
   stands for the coarse organ that holds it (v2's one ``heart``, a region mask's ``lung``).

Conventions: a paired organ without a side means both sides; ``lungs``, ``pulmonary``,
``pleural`` and lung findings without a lobe (``atelectasis``, ``emphysema``) mean all five
lobes (the side's lobes with a side), narrowed by a zone in the same clause (``pleural
effusions at the lung bases``: the lower lobes); ``lung bases``/``bibasilar``/``lower chest``
mean both lower lobes (``left lung base``: the left one);
``heart``/``cardiac``/``pericardial``/``coronary`` mean the five v1 heart structures;
``bones``/``osseous`` mean all 59 bones of the vocabulary, ``spine`` all 24 vertebrae, ``ribs``
all ribs of the side; ``bowel`` means small bowel and colon;
``biliary``/``intrahepatic``/``hepatic veins`` mean the liver (the common bile duct maps to no
organ); a calcified granuloma of the lung is a lung nodule.

Hedged and indeterminate findings (``possible``, ``cannot be excluded``, ``too small to
characterize``) count as abnormal; ``unchanged``/``stable``/``again seen``/``decreased``
findings are still present; ``resolved``, ``no longer seen``, ``has cleared`` and a leading
``Resolved`` are normal now. A lesion named by its look (``hypoattenuating lesion``,
``hypodensity``) is abnormal, a cyst or a mass only with a cue (fluid attenuation,
non-enhancing; solid, enhancing).

Accuracy is measured by :mod:`.scoring` on ``tests/data/report_sentences.jsonl`` (hand-labelled
sentences and reports in ``dev``/``heldout``/``test`` splits; only ``test`` was never used to
change the rules) and per sentence category on ``tests/data/report_sentences_real_style.jsonl``
(its ``heldout`` half never read while writing rules): ``python
tools/analysis_tools/structurer_accuracy.py``. Speed: about 150 reports per second on one CPU core.

Limits:

* Rules read words, not syntax: a finding is given to the nearest organ group of its clause,
  which fails for long sentences that name several organs in unusual order.
* Negation scope is the clause; ``no`` in a comma list negates everything after it, unless
  what follows a comma is stated as present (``No splenomegaly, a small hepatic cyst is
  present``); the finding after such a comma still goes to the nearest organ group before it
  when it names none of its own (``No splenomegaly, hepatic cyst noted`` gives the cyst to the
  spleen). A word that implies organs (``hydronephrosis``: both kidneys) counts only when the
  clause names none of them (``No hydronephrosis, stone in the left kidney`` loses the right
  kidney; a semicolon keeps it).
* A finding with no finding word is read as normal (``The spleen measures 16 cm``), and
  hedged statements (``cannot be excluded``, ``possibly``) count as abnormal.
* Unknown abbreviations and misspellings are not recognised; reports in languages other than
  English are not supported.
* Side words that float away from the organ (``Kidneys: stone on the left``) are used only when
  the sentence or clause names no organ itself.
* Organ headers that list several organs (``HEPATOBILIARY:``) give all of them to a following
  sentence that names none (``Innumerable hypodense lesions.`` -> liver and gallbladder).
* ``hip joint`` is the hip bone only (not the femoral head); ``thoracic spine`` is all twelve
  thoracic vertebrae even when ``lower`` precedes it.
* Comparisons with prior studies (``new``, ``increased``, ``resolved``) are not modelled beyond
  ``resolved``/``no longer seen``/``cleared`` (normal) and ``no change``/``stable`` (still
  abnormal); ``heart size is increased`` is not read as cardiomegaly.
* A lesion with no organ word (``the calculus in the left lower pole``) is lost, and
  ``apical`` alone is no lung zone.
"""
from ctglip.datasets.report_parsing.base import (BaseReportStructurer, build_report_structurer,
                                                 check_structured)
from ctglip.datasets.report_parsing.lexicon import OrganMention, find_mentions
from ctglip.datasets.report_parsing.rule_based import (RuleBasedReportStructurer,
                                                       SentenceFindings, analyze_sentence)
from ctglip.datasets.report_parsing.sentences import (ReportSentence, split_report,
                                                      split_sentences)

__all__ = [
    'BaseReportStructurer', 'RuleBasedReportStructurer', 'SentenceFindings', 'ReportSentence',
    'OrganMention', 'analyze_sentence', 'build_report_structurer', 'check_structured',
    'find_mentions', 'split_report', 'split_sentences',
]
