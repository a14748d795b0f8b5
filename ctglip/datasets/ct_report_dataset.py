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
        skip_invalid: skip (and count, in ``skipped``) studies with bad manifest lines
            (not UTF-8, not JSON, missing fields, empty report, missing files) or bad file
            headers (foreign bytes, 2D or 4D images, CT/mask shape or affine mismatch, DICOM
            folders that are empty, mix series or hold unreadable slices; checked when the
            dataset is built), and studies whose voxels fail to load during training (NaN,
            unknown or no organ labels, cut-off data), instead of stopping with an error.
            Validation and test (``test_mode``) still stop at voxel faults. Duplicate case ids
            and patients in two splits are always errors: no study is the right one to drop.
        phantom: when ``data_root`` holds no manifest, generate the built-in phantom dataset
            there with these options (e.g. ``dict(num_cases=200, seed=0)``); None to require
            an existing dataset.
        max_cases: keep at most this many studies (quick runs).
        abnormality_vocab: the abnormality vocabulary, handed to the report structurer with
            ``organ_vocab`` when its class takes them (configs set the top-level key
            ``abnormality_vocab``). None: the structurer's own default.
        **kwargs: passed to mmengine's ``BaseDataset`` (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self, data_root, split=None, organ_vocab='totalseg_v1',
                 structurer=dict(type='RuleBasedReportStructurer'), skip_invalid=False,
                 phantom=None, max_cases=None, abnormality_vocab=None, **kwargs):
        if split is not None and split not in SPLITS:
            raise DataError(f'split={split!r} is not one of {SPLITS} (or None for all).')
        self.split = split
        self.organ_vocab = organ_vocabulary(organ_vocab)
        self.abnormality_vocab = abnormality_vocab
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
        elif self.phantom is not None:
            self._check_phantom_settings()
        rows = self._read_manifest(manifest)
        all_infos, lines = [], []
        for line_no, row in rows:
            try:
                info = self._parse_row(row, manifest, line_no)
            except DataError as e:
                if not self.skip_invalid:
                    raise
                self._skip('bad manifest line', e)
                continue
            all_infos.append(info)
            lines.append(line_no)
        self._check_unique(all_infos, lines, manifest)
        data_list = [i for i in all_infos if self.split is None or i['split'] == self.split]
        if self.skip_invalid:
            data_list = self._drop_bad_headers(data_list)
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

    def _check_phantom_settings(self):
        from ctglip.datasets.phantom.dataset import phantom_settings_mismatch
        options = dict(self.phantom)
        for key in ('start_method', 'num_workers', 'progress'):  # do not change the data
            options.pop(key, None)
        diff = phantom_settings_mismatch(self.data_root, **options)
        if diff:
            raise DataError(f'{self.data_root} holds a phantom dataset made with other settings '
                            f'than this config asks for ({"; ".join(diff)}). Fix: delete '
                            f'{self.data_root} (it is regenerated on first use, with the '
                            'config\'s settings), or point the config\'s data_root at another '
                            'folder.')

    def _read_manifest(self, manifest):
        rows = []
        with open(manifest, 'rb') as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    rows.append((line_no, self._read_line(raw, manifest, line_no)))
                except DataError as e:
                    if not self.skip_invalid:
                        raise
                    self._skip('bad manifest line', e)
        return [(line_no, row) for line_no, row in rows if row is not None]

    @staticmethod
    def _read_line(raw, manifest, line_no):
        """One manifest line as a dict (None for a blank line)."""
        try:
            text = raw.decode('utf-8-sig' if line_no == 1 else 'utf-8').strip()
        except UnicodeDecodeError as e:
            raise DataError(f'{manifest} line {line_no} is not UTF-8 text (byte '
                            f'0x{raw[e.start]:02x} at column {e.start + 1}). Fix: re-save the '
                            'manifest as UTF-8.') from None
        if not text:
            return None
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f'{manifest} line {line_no} is not valid JSON ({e.msg}, '
                            f'column {e.colno}). Fix: one JSON object per line.') from None
        if not isinstance(row, dict):
            raise DataError(f'{manifest} line {line_no} is not a JSON object. Fix: one JSON '
                            'object {"case_id": ..., "image": ..., ...} per line.')
        return row

    def _parse_row(self, row, manifest, line_no):
        where = f'{manifest} line {line_no}'
        missing = [k for k in REQUIRED_FIELDS if not row.get(k)]
        if missing:
            raise DataError(f'{where}: missing field(s) {missing}. Fix: every line needs '
                            f'{", ".join(REQUIRED_FIELDS)} (see README, "Use your own data").')
        where = f'{where} (case {row["case_id"]!r})'
        if row['split'] not in SPLITS:
            raise DataError(f'{where}: split {row["split"]!r} is not one of {SPLITS}. Fix: '
                            'set "split" to train, val or test.')
        report, findings = row.get('report'), row.get('findings')
        if not (isinstance(report, str) and report.strip()) and not findings:
            raise DataError(f'{where}: empty report and no findings. Fix: give the report text '
                            '(or findings {organ: [sentence]}).')
        if findings is not None and not _is_text_dict(findings):
            raise DataError(f'{where}: findings must be {{organ: [sentence, ...]}}. Fix: '
                            'write them in that form, or leave them out to derive them from '
                            'the report.')
        abnormalities = row.get('abnormalities')
        if abnormalities is not None and not _is_text_dict(abnormalities):
            raise DataError(f'{where}: abnormalities must be {{organ: [abnormality, ...]}}. '
                            'Fix: write them in that form, or leave them out.')
        info = dict(case_id=str(row['case_id']), patient_id=str(row['patient_id']),
                    split=row['split'], label_scheme=row['label_scheme'],
                    img_path=self._path(row['image']), mask_path=self._path(row['organ_mask']),
                    tumor_path=self._path(row['tumor_mask']) if row.get('tumor_mask') else None,
                    report=report or '', findings=findings, abnormalities=abnormalities,
                    status=None)
        if str(info['label_scheme']).endswith('.json'):
            info['label_scheme'] = self._path(info['label_scheme'])
        for key, field in (('img_path', 'image'), ('mask_path', 'organ_mask'),
                           ('tumor_path', 'tumor_mask')):
            if info[key] and not osp.exists(info[key]):
                raise DataError(f'{where}: {field} file {info[key]} does not exist. Fix: correct '
                                f'"{field}"; paths are relative to the dataset folder.')
        return info

    def _path(self, rel):
        return rel if osp.isabs(rel) else osp.join(self.data_root, rel)

    @staticmethod
    def _check_unique(data_list, lines, manifest):
        seen, patient_split = {}, {}
        for info, line_no in zip(data_list, lines):
            if info['case_id'] in seen:
                raise DataError(f'{manifest} line {line_no}: case_id {info["case_id"]!r} occurs '
                                f'twice (first on line {seen[info["case_id"]]}). Fix: case ids '
                                'must be unique.')
            seen[info['case_id']] = line_no
            split, first = patient_split.setdefault(info['patient_id'], (info['split'], line_no))
            if split != info['split']:
                raise DataError(f'{manifest} line {line_no} (case {info["case_id"]!r}): patient '
                                f'{info["patient_id"]!r} is in both {split!r} (line {first}) and '
                                f'{info["split"]!r}. Fix: splits must never share a patient; '
                                'move all of its studies to one split.')

    def _drop_bad_headers(self, data_list):
        """Skip (and count) studies whose file headers are bad; see ``check_study_headers``."""
        from ctglip.datasets.transforms.loading import check_study_headers
        kept = []
        for info in data_list:
            try:
                check_study_headers(info['img_path'], info['mask_path'], info['tumor_path'],
                                    info['case_id'])
            except DataError as e:
                self._skip('bad file header', e)
                continue
            kept.append(info)
        return kept

    def _structure_missing(self, data_list):
        """Derive findings and normal/abnormal status from the report where the manifest has none.

        ``abnormalities`` stays None for such studies: derived labels are not ground truth.
        """
        todo = [i for i in data_list if i['findings'] is None or i['abnormalities'] is None]
        structurer = self.build_structurer() if todo else None
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

    def build_structurer(self):
        """The report structurer, given the dataset's organ and abnormality vocabularies when
        its class takes them (``vocab``, ``abnormality_vocab``)."""
        from ctglip.vocabularies.config import takes_abnormality_vocab
        cfg = dict(self.structurer_cfg)
        cls = cfg['type'] if not isinstance(cfg['type'], str) else \
            REPORT_STRUCTURERS.get(cfg['type'])
        defaults = {}
        if takes_abnormality_vocab(cls):
            if self.abnormality_vocab is not None:
                defaults['abnormality_vocab'] = self.abnormality_vocab
            defaults['vocab'] = self.organ_vocab
        return REPORT_STRUCTURERS.build(cfg, default_args=defaults)

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
