"""Manifest-based dataset of CT studies with organ label maps and radiology reports."""
import json
import os.path as osp
from collections import Counter

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ctglip.datasets.organs import organ_vocabulary
from ctglip.registry import DATASETS, REPORT_STRUCTURERS, TRANSFORMS
from ctglip.utils.errors import DataError

MANIFEST = 'manifest.jsonl'
REQUIRED_FIELDS = ('case_id', 'patient_id', 'split', 'image', 'organ_mask', 'label_scheme')
SPLITS = ('train', 'val', 'test')


@DATASETS.register_module()
class CTReportDataset(BaseDataset):
    """CT studies listed in ``<data_root>/manifest.jsonl`` (format: ``shared/DESIGN.md``).

    Each item runs the pipeline on a data info holding ``case_id``, ``patient_id``, ``split``,
    ``img_path``, ``mask_path``, ``label_scheme``, ``tumor_path``, ``report``, ``findings``
    ({organ: [sentence]}), ``abnormalities`` (ground truth, or None when the manifest has none)
    and ``status`` ({organ: 'normal' | 'abnormal'}).

    Args:
        data_root: the dataset folder.
        split: ``train``, ``val``, ``test`` or None for all studies.
        organ_vocab: the model's organ vocabulary.
        structurer: report structurer config, used for studies without ``findings`` or
            ``abnormalities`` (``type`` from REPORT_STRUCTURERS).
        skip_invalid: skip (and count) studies with bad manifest lines, missing files or
            mismatched CT/mask headers, and studies whose files fail to load during training,
            instead of stopping with an error.
        phantom: when ``data_root`` holds no manifest, generate the built-in phantom dataset
            there with these options (e.g. ``dict(num_cases=200, seed=0)``); None to require
            an existing dataset.
        max_cases: keep at most this many studies (quick runs).
        **kwargs: passed to mmengine's ``BaseDataset`` (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, data_root, split=None, organ_vocab='totalseg_v1',
                 structurer=dict(type='RuleBasedReportStructurer'), skip_invalid=False,
                 phantom=None, max_cases=None, **kwargs):
        if split is not None and split not in SPLITS:
            raise DataError(f'split={split!r} is not one of {SPLITS} (or None for all).')
        self.split = split
        self.organ_vocab = organ_vocabulary(organ_vocab)
        self.structurer_cfg = structurer
        self.skip_invalid = skip_invalid
        self.phantom = phantom
        self.max_cases = max_cases
        self.skipped = Counter()
        kwargs.setdefault('ann_file', MANIFEST)
        # Build transforms from ctglip's registry so the dataset works without a default scope.
        kwargs['pipeline'] = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                              for t in kwargs.get('pipeline', [])]
        for t in kwargs['pipeline']:  # a relative preprocessing cache lives in the dataset
            if hasattr(t, 'cache_dir') and not osp.isabs(t.cache_dir):
                t.cache_dir = osp.join(data_root, t.cache_dir)
        super().__init__(data_root=data_root, **kwargs)

    # -- reading the manifest ---------------------------------------------------------------
    def load_data_list(self):
        manifest = self.ann_file
        if not osp.isfile(manifest):
            if self.phantom is None:
                raise DataError(f'no {MANIFEST} in {self.data_root}. Fix: point --data-root (or '
                                'the dataset data_root) at a folder with a manifest, or write one '
                                'with python tools/make_phantoms.py OUT_DIR.')
            self._make_phantoms()
        rows = self._read_manifest(manifest)
        all_infos = []
        for line_no, row in rows:
            try:
                info = self._parse_row(row, manifest, line_no)
            except DataError as e:
                if not self.skip_invalid:
                    raise
                self._skip('bad manifest line', e)
                continue
            all_infos.append(info)
        self._check_unique(all_infos, manifest)
        data_list = [i for i in all_infos if self.split is None or i['split'] == self.split]
        if self.max_cases is not None:
            data_list = data_list[:self.max_cases]
        if not data_list:
            raise DataError(f'{manifest} has no studies of split {self.split!r}. Fix: set "split" '
                            'in the manifest lines or choose another split.')
        self._structure_missing(data_list)
        if self.skipped:
            print_log(f'{manifest}: skipped {sum(self.skipped.values())} studies '
                      f'({dict(self.skipped)})', logger='current', level=30)
        return data_list

    def _make_phantoms(self):
        from ctglip.datasets.phantom import make_phantom_dataset
        options = dict(self.phantom)
        print_log(f'No dataset at {self.data_root}: generating the built-in phantom dataset '
                  f'({options}). To train on real data, point --data-root at a folder with a '
                  'manifest.jsonl (see README, "Use your own data").', logger='current')
        make_phantom_dataset(self.data_root, **options)

    @staticmethod
    def _read_manifest(manifest):
        rows = []
        with open(manifest, 'rb') as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    text = raw.decode('utf-8').strip()
                except UnicodeDecodeError:
                    raise DataError(f'{manifest} line {line_no} is not UTF-8 text. Fix: re-save '
                                    'the manifest as UTF-8.') from None
                if not text:
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as e:
                    raise DataError(f'{manifest} line {line_no} is not valid JSON ({e.msg}, '
                                    f'column {e.colno}). Fix: one JSON object per line.') from None
                if not isinstance(row, dict):
                    raise DataError(f'{manifest} line {line_no} is not a JSON object.')
                rows.append((line_no, row))
        return rows

    def _parse_row(self, row, manifest, line_no):
        where = f'{manifest} line {line_no}'
        missing = [k for k in REQUIRED_FIELDS if not row.get(k)]
        if missing:
            raise DataError(f'{where}: missing field(s) {missing}. Fix: every line needs '
                            f'{", ".join(REQUIRED_FIELDS)} (see README, "Use your own data").')
        where = f'{where} (case {row["case_id"]!r})'
        if row['split'] not in SPLITS:
            raise DataError(f'{where}: split {row["split"]!r} is not one of {SPLITS}.')
        report, findings = row.get('report'), row.get('findings')
        if not (isinstance(report, str) and report.strip()) and not findings:
            raise DataError(f'{where}: empty report and no findings. Fix: give the report text '
                            '(or findings {organ: [sentence]}).')
        if findings is not None and not _is_text_dict(findings):
            raise DataError(f'{where}: findings must be {{organ: [sentence, ...]}}.')
        abnormalities = row.get('abnormalities')
        if abnormalities is not None and not _is_text_dict(abnormalities):
            raise DataError(f'{where}: abnormalities must be {{organ: [abnormality, ...]}}.')
        info = dict(case_id=str(row['case_id']), patient_id=str(row['patient_id']),
                    split=row['split'], label_scheme=row['label_scheme'],
                    img_path=self._path(row['image']), mask_path=self._path(row['organ_mask']),
                    tumor_path=self._path(row['tumor_mask']) if row.get('tumor_mask') else None,
                    report=report or '', findings=findings, abnormalities=abnormalities,
                    status=None)
        if str(info['label_scheme']).endswith('.json'):
            info['label_scheme'] = self._path(info['label_scheme'])
        for key in ('img_path', 'mask_path', 'tumor_path'):
            if info[key] and not osp.exists(info[key]):
                raise DataError(f'{where}: {key.replace("_path", "")} file {info[key]} does not '
                                'exist. Fix: paths are relative to the dataset folder.')
        return info

    def _path(self, rel):
        return rel if osp.isabs(rel) else osp.join(self.data_root, rel)

    def _check_unique(self, data_list, manifest):
        seen, patient_split = set(), {}
        for info in data_list:
            if info['case_id'] in seen:
                raise DataError(f'{manifest}: case_id {info["case_id"]!r} occurs twice. Fix: '
                                'case ids must be unique.')
            seen.add(info['case_id'])
            split = patient_split.setdefault(info['patient_id'], info['split'])
            if split != info['split']:
                raise DataError(f'{manifest}: patient {info["patient_id"]!r} is in both {split!r} '
                                f'and {info["split"]!r}. Fix: splits must never share a patient.')

    def _structure_missing(self, data_list):
        """Derive findings and normal/abnormal status from the report where the manifest has none.

        ``abnormalities`` stays None for such studies: derived labels are not ground truth.
        """
        todo = [i for i in data_list if i['findings'] is None or i['abnormalities'] is None]
        structurer = REPORT_STRUCTURERS.build(self.structurer_cfg) if todo else None
        for info in data_list:
            if info in todo:
                out = structurer.structure(info['report'])
                if info['findings'] is None:
                    info['findings'] = out['findings']
                info['status'] = out['status']
            else:
                info['status'] = {o: 'normal' for o in info['findings']}
                info['status'].update({o: 'abnormal' for o, v in info['abnormalities'].items()
                                       if v})

    def _skip(self, why, error):
        self.skipped[why] += 1
        print_log(f'skipping: {error}', logger='current', level=30)

    # -- items ---------------------------------------------------------------------------------
    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except DataError as e:
            if not self.skip_invalid or self.test_mode:
                raise
            self._skip('unreadable study', e)
            return None  # BaseDataset then fetches another study


def _is_text_dict(value):
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
        for k, v in value.items())
