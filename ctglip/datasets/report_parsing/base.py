"""The report-structurer interface, and how to build one from the registry.

A report structurer turns one free-text report into organ-level findings. Any class registered
in ``REPORT_STRUCTURERS`` with this interface can replace the rule-based one, e.g. an LLM-based
structurer::

    from ctglip.registry import REPORT_STRUCTURERS
    from ctglip.datasets.report_parsing import BaseReportStructurer

    @REPORT_STRUCTURERS.register_module()
    class LLMReportStructurer(BaseReportStructurer):
        def __init__(self, model='...'):
            ...

        def structure(self, report):
            ...  # ask the model, return the three dicts below

and then ``python tools/structure_reports.py IN.jsonl --out OUT.jsonl --structurer
LLMReportStructurer`` (import the module first, or put it under ``projects/``).
"""
from abc import ABCMeta, abstractmethod

from ctglip.utils.errors import ConfigError
from ctglip.vocabularies import load_abnormality_vocab, organ_vocabulary

STATUSES = ('normal', 'abnormal')


class BaseReportStructurer(metaclass=ABCMeta):
    """Turns free-text reports into ``findings``, ``status`` and ``abnormalities`` per organ.

    Organ keys are TotalSegmentator v1 names (``liver``, ``kidney_left``,
    ``lung_upper_lobe_right``, ``vertebrae_L1``, ...) unless the structurer is given another
    organ vocabulary; abnormality names come from an abnormality vocabulary
    (:mod:`ctglip.vocabularies`; the default one unless the structurer is given another).
    """

    @abstractmethod
    def structure(self, report):
        """Structure one report.

        Args:
            report (str): free text of one radiology report.

        Returns:
            dict: ``findings`` ``{organ: [sentence, ...]}``, ``status``
            ``{organ: 'normal' | 'abnormal'}`` and ``abnormalities`` ``{organ: [name, ...]}``,
            all keyed by the organs the report talks about (an abnormal organ whose finding is
            outside the vocabulary has an empty list).
        """

    def structure_batch(self, reports):
        """Structure several reports; the default calls :meth:`structure` on each.

        Structurers with a batched backend (an LLM server) override this.
        """
        return [self.structure(report) for report in reports]


def check_structured(result, vocab='totalseg_v1', abnormality_vocab=None):
    """Check that a structurer returned the documented form; raise ``ValueError`` if not.

    Used by ``tools/structure_reports.py`` so that a plugged-in structurer that returns
    something else fails with a message that says what is wrong, not with a broken file.

    Args:
        result (dict): what ``structure()`` returned.
        vocab: the organ vocabulary the organs must belong to.
        abnormality_vocab: the abnormality vocabulary the names must belong to (None: the
            default vocabulary).
    """
    organs = set(organ_vocabulary(vocab))
    names = set(load_abnormality_vocab(abnormality_vocab).names)
    if not isinstance(result, dict) or set(result) < {'findings', 'status', 'abnormalities'}:
        raise ValueError('a report structurer must return a dict with the keys findings, status '
                         f'and abnormalities; got {type(result).__name__} '
                         f'{sorted(result) if isinstance(result, dict) else ""}')
    for key in ('findings', 'status', 'abnormalities'):
        value = result[key]
        if not isinstance(value, dict):
            raise ValueError(f'structurer output {key!r} must be a dict keyed by organ, '
                             f'got {type(value).__name__}')
        unknown = sorted(set(value) - organs)
        if unknown:
            raise ValueError(f'structurer output {key!r} has organs outside the {vocab} '
                             f'vocabulary: {unknown[:5]}')
    bad = {o: s for o, s in result['status'].items() if s not in STATUSES}
    if bad:
        raise ValueError(f'structurer status must be one of {STATUSES}; got {bad}')
    for organ, values in result['abnormalities'].items():
        unknown = [v for v in values if v not in names]
        if unknown:
            raise ValueError(f'structurer abnormalities of {organ!r} are not in the abnormality '
                             f'vocabulary: {unknown}')
    return result


def build_report_structurer(cfg='RuleBasedReportStructurer'):
    """Build a report structurer from a registered name or a config dict.

    Args:
        cfg: a name registered in ``REPORT_STRUCTURERS`` or ``dict(type=name, **kwargs)``.

    Raises:
        ConfigError: the name is not registered (the message lists the registered names).
    """
    from ctglip.registry import REPORT_STRUCTURERS
    from ctglip.utils.errors import UnknownTypeError
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    try:
        return REPORT_STRUCTURERS.build(cfg)
    except UnknownTypeError as e:
        raise ConfigError(str(e)) from None
