"""The manifest format as a fine-tuning dataset: every study of the split has a tumor mask."""
from ctglip.datasets.ct_report_dataset import CTReportDataset
from ctglip.datasets.transforms.tumor import _check_values
from ctglip.datasets.tumor_layouts import TumorLayoutDataset
from ctglip.registry import DATASETS, TRANSFORMS
from ctglip.utils.errors import ConfigError, DataError

MISSING_POLICIES = ('error', 'tumor_free')
# abnormalities of the default vocabulary that are tumors: a study listing one has a tumor
TUMOR_ABNORMALITIES = ('liver mass', 'pancreatic mass')


@DATASETS.register_module()
class TumorManifestDataset(CTReportDataset):
    """Studies of ``manifest.jsonl`` for tumor fine-tuning (segmentation and detection).

    Reads the manifest like :class:`~ctglip.datasets.CTReportDataset` and requires the field
    ``tumor_mask`` of every study of its split: a study without one stops with a one-line
    ``DataError`` naming the manifest line (a counted skip with ``skip_invalid=True``). The
    tumor mask is a NIfTI on the CT grid holding ``tumor_label_map``'s values: binary (0, 1)
    by default, or a labelled map whose ``tumor_labels`` are tumor. As with the MSD and KiTS
    datasets, the pipeline must turn it into a binary mask with ``SelectTumorLabels`` right
    after ``LoadCTStudy``; that transform also refuses values outside ``tumor_label_map``.

    ``missing_tumor_mask='tumor_free'`` declares that a study without ``tumor_mask`` has no
    tumor (it gets an empty mask). Use it only where that is known, as for the built-in
    phantom, which writes ``tumor_masks/`` only for studies with a tumor (its README.txt); a
    study whose ``abnormalities`` list a tumor (liver or pancreatic mass) still needs its mask.

    Data infos add ``tumor_values``, ``tumor_label_map`` and ``tumor_free`` to those of
    ``CTReportDataset``.

    Args:
        data_root: the dataset folder.
        tumor_labels (Sequence[int]): the values of the tumor masks that are tumor.
        tumor_label_map (dict): ``{value: name}`` of every value a tumor mask may hold.
        missing_tumor_mask (str): ``error`` (default) or ``tumor_free``.
        **kwargs: see :class:`~ctglip.datasets.CTReportDataset` (``split``, ``organ_vocab``,
            ``phantom``, ``skip_invalid``, ``max_cases``, ``pipeline``, ...).

    Raises:
        ConfigError: bad ``tumor_labels``, ``tumor_label_map`` or policy, or a pipeline whose
            ``LoadCTStudy`` is not followed by ``SelectTumorLabels(values=tumor_labels)``.
    """

    # the same pipeline rule as the MSD / KiTS datasets (one implementation)
    _check_pipeline = TumorLayoutDataset._check_pipeline
    _pipeline_levels = staticmethod(TumorLayoutDataset._pipeline_levels)

    def __init__(self, data_root, tumor_labels=(1,), tumor_label_map=None,
                 missing_tumor_mask='error', **kwargs):
        name = type(self).__name__
        if missing_tumor_mask not in MISSING_POLICIES:
            raise ConfigError(f'{name} missing_tumor_mask={missing_tumor_mask!r}; use one of '
                              f'{MISSING_POLICIES}.')
        self.tumor_values = _check_values(tumor_labels, f'{name} tumor_labels')
        label_map = {0: 'background', 1: 'tumor'} if tumor_label_map is None else tumor_label_map
        try:
            self.tumor_label_map = {int(k): str(v) for k, v in dict(label_map).items()}
        except (TypeError, ValueError):
            raise ConfigError(f'{name} tumor_label_map must be {{value: name}}, got '
                              f'{label_map!r}') from None
        outside = [v for v in self.tumor_values if v not in self.tumor_label_map]
        if outside:
            raise ConfigError(f'{name} tumor_labels {self.tumor_values} include {outside}, which '
                              f'tumor_label_map {self.tumor_label_map} does not define.')
        self.missing_tumor_mask = missing_tumor_mask
        kwargs['pipeline'] = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                              for t in kwargs.get('pipeline', [])]
        self._check_pipeline(kwargs['pipeline'])
        super().__init__(data_root, **kwargs)

    def _parse_row(self, row, manifest, line_no):
        info = super()._parse_row(row, manifest, line_no)
        info.update(tumor_values=self.tumor_values, tumor_label_map=dict(self.tumor_label_map),
                    tumor_free=False)
        if info['tumor_path'] or (self.split is not None and info['split'] != self.split):
            return info
        where = f'{manifest} line {line_no} (case {info["case_id"]!r})'
        if self.missing_tumor_mask == 'error':
            raise DataError(f'{where}: no "tumor_mask", which every study of a fine-tune split '
                            f'({info["split"]}) needs. Fix: add the tumor mask (an all-zero '
                            'mask on the CT grid for a study without tumor), leave the study '
                            "out, or set missing_tumor_mask='tumor_free' if every study without "
                            'a mask is known to be tumor free.')
        listed = sorted({a for names in (info['abnormalities'] or {}).values() for a in names
                         if a in TUMOR_ABNORMALITIES})
        if listed:
            raise DataError(f'{where}: its abnormalities list {", ".join(listed)} but it has no '
                            '"tumor_mask", so it cannot count as tumor free. Fix: add the tumor '
                            'mask.')
        info['tumor_free'] = True
        return info
