"""Tumor segmentation benchmarks read in their published layouts, without a manifest: the
Medical Segmentation Decathlon (Task03 liver, Task07 pancreas) and KiTS (kidney).

Both give the same data infos as :class:`~ctglip.datasets.CTReportDataset`, so its pipelines
work unchanged, with one addition: their segmentations are label maps that hold the organ next
to the tumor, so the pipeline must turn them into a binary tumor mask with
:class:`~ctglip.datasets.transforms.SelectTumorLabels` right after ``LoadCTStudy`` (the datasets
refuse a pipeline without it). Nothing is written next to the data.
"""
import json
import os
import os.path as osp
import re

import numpy as np
from mmengine.logging import print_log

from ctglip.datasets.ct_report_dataset import CTReportDataset
from ctglip.datasets.organs import scheme_classes
from ctglip.datasets.transforms.caching import CachedPreprocess
from ctglip.datasets.transforms.loading import LoadCTStudy
from ctglip.datasets.transforms.tumor import SelectTumorLabels, _check_values
from ctglip.registry import DATASETS, TRANSFORMS
from ctglip.utils.errors import ConfigError, DataError

MSD_INDEX = 'dataset.json'
# task_organ -> the MSD task folder and its label map (dataset.json "labels")
MSD_TASKS = {'liver': 'Task03_Liver', 'pancreas': 'Task07_Pancreas'}
MSD_TUMOR_NAMES = ('cancer', 'tumor', 'tumour')
MSD_TUMOR_LABEL = 2
# KiTS21 / KiTS23; KiTS19 label maps use 0-2 only
KITS_LABEL_MAP = {0: 'background', 1: 'kidney', 2: 'tumor', 3: 'cyst'}
KITS_CASE = re.compile(r'case_\d{5}')
KITS_IMAGE, KITS_SEGMENTATION = 'imaging.nii.gz', 'segmentation.nii.gz'
KITS_ORGAN_MASK = 'organ_mask'  # <case folder>/organ_mask.nii.gz when organ_mask_dir is None


def split_cases(patient_ids, seed=0, val_fraction=0.1, test_fraction=0.2):
    """Assign each patient to ``train``, ``val`` or ``test``, deterministically by seed.

    The patients are sorted, shuffled by ``seed``, and cut into test, val and train in that
    order, so that the assignment depends only on the set of patients and the seed (not on the
    listing order). A fraction above 0 gets at least one patient.

    Args:
        patient_ids (Iterable[str]): the patients (repeats allowed).
        seed (int): seed of the shuffle.
        val_fraction (float): share of patients in ``val``.
        test_fraction (float): share of patients in ``test``.

    Returns:
        dict: ``{patient_id: split}``.

    Example:
        >>> split_cases(['a', 'b', 'c', 'd'], seed=0, val_fraction=0.25, test_fraction=0.25)
        {'c': 'test', 'a': 'val', 'b': 'train', 'd': 'train'}
    """
    patients = sorted(set(patient_ids))
    n = len(patients)
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n, max(1, round(n * test_fraction))) if test_fraction > 0 else 0
    n_val = min(n - n_test, max(1, round(n * val_fraction))) if val_fraction > 0 else 0
    splits = {}
    for rank, i in enumerate(order):
        splits[patients[i]] = ('test' if rank < n_test else
                               'val' if rank < n_test + n_val else 'train')
    return splits


class TumorLayoutDataset(CTReportDataset):
    """Base of the datasets that read a tumor benchmark in its own layout (not registered).

    A subclass lists its labelled cases (``_list_cases``); this class assigns the splits, finds
    the organ masks, checks files and the pipeline, and builds the data infos: ``case_id``,
    ``patient_id`` (= ``case_id``: one study per patient in MSD and KiTS), ``split``,
    ``img_path``, ``mask_path`` (the organ mask), ``label_scheme``, ``tumor_path`` (the
    labelled segmentation), ``tumor_values`` (its tumor labels), ``tumor_label_map``
    ({label: name}, every value it may hold), ``tumor_organ`` (the organ or organ group of the
    benchmark), ``report`` '', ``findings`` {}, ``abnormalities`` None and ``status`` {}.

    Args:
        data_root: the benchmark folder.
        organ_mask_dir: the folder of TotalSegmentator organ masks, ``<case_id>.nii.gz``
            (``--ml``) or ``<case_id>/`` (one file per organ); relative to ``data_root``
            unless absolute.
        tumor_values: the labels of the segmentation that are tumor.
        split: ``train``, ``val``, ``test`` or None for all cases.
        split_seed: seed of the split assignment (see :func:`split_cases`).
        val_fraction: share of cases in ``val``.
        test_fraction: share of cases in ``test``.
        label_scheme: the organ masks' scheme: ``totalseg_v2`` (TotalSegmentator 2.x),
            ``totalseg_v1`` or a JSON class map (relative to ``data_root`` unless absolute).
        **kwargs: passed to :class:`~ctglip.datasets.CTReportDataset` (``organ_vocab``,
            ``skip_invalid``: skip and count cases with missing files or organ masks,
            ``max_cases``, ``pipeline``, ``test_mode``, ...).

    Raises:
        ConfigError: bad fractions or tumor labels, or a pipeline whose ``LoadCTStudy`` is not
            followed by ``SelectTumorLabels(values=tumor_values)``.
    """

    tumor_organ = None

    def __init__(self, data_root, organ_mask_dir, tumor_values, split=None, split_seed=0,
                 val_fraction=0.1, test_fraction=0.2, label_scheme='totalseg_v2', **kwargs):
        name = type(self).__name__
        for option in ('phantom', 'structurer'):
            if option in kwargs:
                raise ConfigError(f'{name} does not take {option!r} (it reads the benchmark\'s '
                                  'own files and has no reports). Fix: remove it from the '
                                  'dataset config.')
        fractions = (val_fraction, test_fraction)
        if any(not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 <= f <= 1
               for f in fractions) or sum(fractions) > 1:
            raise ConfigError(f'{name}: val_fraction={val_fraction!r} and test_fraction='
                              f'{test_fraction!r} must be numbers in [0, 1] whose sum is at '
                              'most 1. Fix: e.g. val_fraction=0.1, test_fraction=0.2.')
        self.tumor_values = _check_values(tumor_values, f'{name} tumor labels')
        self.organ_mask_dir = organ_mask_dir
        self.split_seed = split_seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.label_scheme = label_scheme
        kwargs['pipeline'] = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                              for t in kwargs.get('pipeline', [])]
        self._check_pipeline(kwargs['pipeline'])
        kwargs.setdefault('ann_file', '')
        super().__init__(data_root, split=split, **kwargs)

    def _check_pipeline(self, pipeline):
        """Every ``LoadCTStudy`` must be followed by ``SelectTumorLabels`` with our values."""
        fix = (f"put dict(type='SelectTumorLabels', values={self.tumor_values}) right after "
               "LoadCTStudy (inside CachedPreprocess when that holds LoadCTStudy)")
        for steps in self._pipeline_levels(pipeline):
            for i, step in enumerate(steps):
                if not isinstance(step, LoadCTStudy):
                    continue
                after = steps[i + 1] if i + 1 < len(steps) else None
                if not isinstance(after, SelectTumorLabels):
                    raise ConfigError(
                        f'{type(self).__name__}: the pipeline loads the segmentation with '
                        'LoadCTStudy, which counts every non-zero label (the organ too) as '
                        f'tumor, and SelectTumorLabels does not follow it. Fix: {fix}.')
                if after.values != self.tumor_values:
                    raise ConfigError(
                        f'{type(self).__name__}: SelectTumorLabels(values={after.values}) but '
                        f'the dataset\'s tumor labels are {self.tumor_values}. Fix: {fix}.')

    @staticmethod
    def _pipeline_levels(pipeline):
        levels, todo = [], [list(pipeline)]
        while todo:
            steps = todo.pop()
            levels.append(steps)
            todo.extend(list(t.transforms) for t in steps if isinstance(t, CachedPreprocess))
        return levels

    # -- the data list ------------------------------------------------------------------------
    def _list_cases(self):
        """The labelled cases as ``[(case_id, img_path, label_path, source)]`` and the label map.

        ``source`` names where the case was listed, for error messages.
        """
        raise NotImplementedError

    def _organ_mask_base(self, case_id):
        """The organ mask path of a case without its ``.nii.gz`` suffix."""
        return osp.join(self._path(self.organ_mask_dir), case_id)

    def load_data_list(self):
        if not osp.isdir(self.data_root):
            raise DataError(f'{type(self).__name__}: data_root {self.data_root} is not a '
                            'folder. Fix: point data_root at the benchmark folder.')
        scheme = self.label_scheme
        if str(scheme).endswith('.json'):
            scheme = self._path(scheme)
        scheme_classes(scheme)  # an unknown scheme fails now, not at the first item
        cases, label_map = self._list_cases()
        seen = {}
        for case_id, _, _, source in cases:
            if case_id in seen:
                raise DataError(f'{source}: case {case_id!r} occurs twice (also {seen[case_id]}). '
                                'Fix: case ids must be unique.')
            seen[case_id] = source
        splits = split_cases(seen, self.split_seed, self.val_fraction, self.test_fraction)
        data_list, no_mask = [], []
        for case_id, img_path, label_path, source in cases:
            if self.split is not None and splits[case_id] != self.split:
                continue
            try:
                self._check_files(case_id, img_path, label_path, source)
            except DataError as e:
                if not self.skip_invalid:
                    raise
                self._skip('missing file', e)
                continue
            mask_path = self._find_organ_mask(case_id)
            if mask_path is None:
                no_mask.append((case_id, img_path))
                continue
            data_list.append(dict(
                case_id=case_id, patient_id=case_id, split=splits[case_id], img_path=img_path,
                mask_path=mask_path, label_scheme=scheme, tumor_path=label_path,
                tumor_values=self.tumor_values, tumor_label_map=dict(label_map),
                tumor_organ=self.tumor_organ, report='', findings={}, abnormalities=None,
                status={}))
        if no_mask and not self.skip_invalid:
            raise self._missing_mask_error(no_mask)
        for case in no_mask:
            self._skip('missing organ mask', self._missing_mask_error([case]))
        if self.skip_invalid:
            data_list = self._drop_bad_headers(data_list)
        if self.max_cases is not None:
            data_list = data_list[:self.max_cases]
        if not data_list:
            raise DataError(f'{type(self).__name__}: {self.data_root} has no usable cases of '
                            f'split {self.split!r} ({len(cases)} listed, skipped: '
                            f'{dict(self.skipped)}). Fix: choose another split or change '
                            'val_fraction / test_fraction.')
        if self.skipped:
            print_log(f'{type(self).__name__} {self.data_root}: skipped '
                      f'{sum(self.skipped.values())} cases ({dict(self.skipped)})',
                      logger='current', level=30)
        return data_list

    @staticmethod
    def _check_files(case_id, img_path, label_path, source):
        for path, what in ((img_path, 'image'), (label_path, 'segmentation')):
            if not osp.isfile(path):
                raise DataError(f'{source}: case {case_id!r}: {what} file {path} does not exist. '
                                'Fix: extract the complete benchmark into data_root (or remove '
                                'the case from the listing).')

    def _find_organ_mask(self, case_id):
        base = self._organ_mask_base(case_id)
        as_file, as_folder = base + '.nii.gz', base
        if osp.isfile(as_file) and osp.isdir(as_folder):
            raise DataError(f'case {case_id!r}: both {as_file} and the folder {as_folder} hold '
                            'an organ mask. Fix: keep one of them.')
        if osp.isfile(as_file):
            return as_file
        return as_folder if osp.isdir(as_folder) else None

    def _missing_mask_error(self, no_mask):
        case_id, img_path = no_mask[0]
        out = self._organ_mask_base(case_id) + '.nii.gz'
        others = (f' ({len(no_mask) - 1} more cases have none either: run it for each)'
                  if len(no_mask) > 1 else '')
        return DataError(f'case {case_id!r}: organ mask {out} does not exist{others}. Fix: make '
                         f'it with TotalSegmentator: TotalSegmentator -i {img_path} -o {out} '
                         f'--ml (and label_scheme={self.label_scheme!r} for TotalSegmentator '
                         '2.x), or point organ_mask_dir at the folder that holds the masks.')


@DATASETS.register_module()
class MSDTumorDataset(TumorLayoutDataset):
    """Liver or pancreas tumors of the Medical Segmentation Decathlon, read from a task folder.

    The task folder (``Task03_Liver`` or ``Task07_Pancreas`` as extracted) holds
    ``dataset.json``, ``imagesTr/`` and ``labelsTr/``; the cases are the ``training`` entries
    of ``dataset.json`` (``{"image": "./imagesTr/liver_0.nii.gz", "label":
    "./labelsTr/liver_0.nii.gz"}``), named by their file (``liver_0``); the ``test`` entries
    have no labels and are not used. The ``labels`` field of ``dataset.json`` must be the
    task's label map:

    ===========  =================  ==========================================
    task_organ   task folder        labels (tumor = label 2)
    ===========  =================  ==========================================
    liver        Task03_Liver       0 background, 1 liver, 2 cancer
    pancreas     Task07_Pancreas    0 background, 1 pancreas, 2 cancer
    ===========  =================  ==========================================

    The tumor mask is the voxels of label 2 (``SelectTumorLabels(values=(2,))``); a
    segmentation holding another value stops at loading with the file and the label map named.
    Organ masks come from TotalSegmentator, run by the user on each image
    (``TotalSegmentator -i imagesTr/liver_0.nii.gz -o organ_masks/liver_0.nii.gz --ml``) and
    kept as ``organ_mask_dir/<case>.nii.gz`` (or ``organ_mask_dir/<case>/``, one file per
    organ). Splits are drawn over the cases by :func:`split_cases` (every case is its own
    patient).

    Args:
        data_root: the task folder.
        organ_mask_dir: the folder of organ masks (relative to ``data_root`` unless absolute).
        task_organ: ``liver`` (Task03) or ``pancreas`` (Task07).
        **kwargs: see :class:`TumorLayoutDataset` (``split``, ``split_seed``,
            ``val_fraction``, ``test_fraction``, ``label_scheme``, ``pipeline``, ...).

    Example:
        >>> ds = MSDTumorDataset('data/Task03_Liver', 'organ_masks', task_organ='liver',
        ...                      split='train', pipeline=[
        ...                          dict(type='LoadCTStudy'),
        ...                          dict(type='SelectTumorLabels', values=(2,)),
        ...                          dict(type='PackCTInputs')])
    """

    def __init__(self, data_root, organ_mask_dir, task_organ='liver', **kwargs):
        if task_organ not in MSD_TASKS:
            raise ConfigError(f'MSDTumorDataset task_organ={task_organ!r} is not supported; use '
                              + ' or '.join(f'{o!r} ({t})' for o, t in MSD_TASKS.items()) + '.')
        self.task_organ = self.tumor_organ = task_organ
        super().__init__(data_root, organ_mask_dir, tumor_values=(MSD_TUMOR_LABEL,), **kwargs)

    def _list_cases(self):
        index = osp.join(self.data_root, MSD_INDEX)
        task = MSD_TASKS[self.task_organ]
        if not osp.isfile(index):
            raise DataError(f'MSDTumorDataset: no {MSD_INDEX} in {self.data_root}. Fix: point '
                            f'data_root at the extracted task folder ({task}).')
        try:
            with open(index) as f:
                meta = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f'{index} is not valid JSON ({e}). Fix: extract {MSD_INDEX} from '
                            f'the {task} archive again.') from None
        if not isinstance(meta, dict):
            raise DataError(f'{index} is not a JSON object. Fix: extract {MSD_INDEX} from the '
                            f'{task} archive again.')
        label_map = self._label_map(meta.get('labels'), index, task)
        entries = meta.get('training')
        if not isinstance(entries, list) or not entries:
            raise DataError(f'{index}: field "training" must be a non-empty list of {{"image": '
                            '..., "label": ...}}. Fix: extract dataset.json from the '
                            f'{task} archive again.')
        cases = []
        for i, entry in enumerate(entries):
            source = f'{index} training[{i}]'
            if not (isinstance(entry, dict) and isinstance(entry.get('image'), str)
                    and isinstance(entry.get('label'), str)):
                raise DataError(f'{source} must be {{"image": "./imagesTr/<case>.nii.gz", '
                                f'"label": "./labelsTr/<case>.nii.gz"}}, got {entry!r}. Fix: '
                                'correct the entry.')
            img_path = osp.normpath(self._path(entry['image']))
            case_id = re.sub(r'\.nii(\.gz)?$', '', osp.basename(img_path))
            cases.append((case_id, img_path, osp.normpath(self._path(entry['label'])), source))
        return cases, label_map

    def _label_map(self, labels, index, task):
        expected = {0: 'background', 1: self.task_organ, 2: 'cancer'}
        shown = {str(k): v for k, v in expected.items()}
        try:
            found = {int(k): str(v).strip().lower() for k, v in labels.items()}
        except (AttributeError, TypeError, ValueError):
            found = None
        if (found is None or set(found) != set(expected) or found[0] != 'background'
                or found[1] != self.task_organ or found[2] not in MSD_TUMOR_NAMES):
            raise DataError(f'{index}: field "labels" is {labels!r}, but task_organ='
                            f'{self.task_organ!r} ({task}) has the label map {shown}. Fix: point '
                            f'data_root at the {task} folder, or set task_organ to the task '
                            'of this folder.')
        return {int(k): str(v) for k, v in labels.items()}


@DATASETS.register_module()
class KiTSTumorDataset(TumorLayoutDataset):
    """Kidney tumors of the KiTS challenges (KiTS19, KiTS21, KiTS23), read from the case folders.

    ``data_root`` holds ``case_XXXXX/imaging.nii.gz`` and ``case_XXXXX/segmentation.nii.gz``
    (KiTS19: 0 background, 1 kidney, 2 tumor; KiTS21 and KiTS23 add 3 cyst). Case folders
    without a segmentation (KiTS19's test cases) are left out with a warning. The tumor mask is
    the voxels whose label is in ``tumor_labels`` (``SelectTumorLabels(values=tumor_labels)``);
    a segmentation holding a value outside ``label_map`` stops at loading with the file named.
    Organ masks come from TotalSegmentator, run by the user on each image: by default inside
    each case folder (``TotalSegmentator -i case_00000/imaging.nii.gz -o
    case_00000/organ_mask.nii.gz --ml``), or in ``organ_mask_dir/<case>.nii.gz``. Splits are
    drawn over the cases by :func:`split_cases` (every case is its own patient).

    Args:
        data_root: the folder of case folders (``kits19/data``, ``kits23/dataset``).
        organ_mask_dir: the folder of organ masks ``<case>.nii.gz`` (relative to ``data_root``
            unless absolute); None: ``<case folder>/organ_mask.nii.gz``.
        tumor_labels: the segmentation labels that are tumor; ``(2, 3)`` counts cysts too.
        label_map: ``{label: name}`` of every value a segmentation may hold (KiTS21 / KiTS23;
            KiTS19 uses a part of it).
        **kwargs: see :class:`TumorLayoutDataset` (``split``, ``split_seed``,
            ``val_fraction``, ``test_fraction``, ``label_scheme``, ``pipeline``, ...).
    """

    tumor_organ = 'kidney'

    def __init__(self, data_root, organ_mask_dir=None, tumor_labels=(2,),
                 label_map=KITS_LABEL_MAP, **kwargs):
        try:
            self.label_map = {int(k): str(v) for k, v in dict(label_map).items()}
        except (TypeError, ValueError):
            raise ConfigError(f'KiTSTumorDataset label_map must be {{label: name}}, got '
                              f'{label_map!r}') from None
        values = _check_values(tumor_labels, 'KiTSTumorDataset tumor_labels')
        outside = [v for v in values if v not in self.label_map]
        if outside:
            raise ConfigError(f'KiTSTumorDataset tumor_labels {values} include {outside}, which '
                              f'label_map {self.label_map} does not define. Fix: use labels of '
                              'the map (2 tumor, 3 cyst).')
        super().__init__(data_root, organ_mask_dir, tumor_values=values, **kwargs)

    def _organ_mask_base(self, case_id):
        if self.organ_mask_dir is None:
            return osp.join(self.data_root, case_id, KITS_ORGAN_MASK)
        return super()._organ_mask_base(case_id)

    def _list_cases(self):
        folders = sorted(d for d in os.listdir(self.data_root)
                         if KITS_CASE.fullmatch(d) and osp.isdir(osp.join(self.data_root, d)))
        if not folders:
            raise DataError(f'KiTSTumorDataset: {self.data_root} holds no case_XXXXX folders. '
                            'Fix: point data_root at the folder of case folders (kits19/data, '
                            'kits23/dataset).')
        cases, unlabelled = [], []
        for case_id in folders:
            folder = osp.join(self.data_root, case_id)
            label_path = osp.join(folder, KITS_SEGMENTATION)
            if not osp.isfile(label_path):
                unlabelled.append(case_id)
                continue
            cases.append((case_id, osp.join(folder, KITS_IMAGE), label_path, folder))
        if unlabelled:
            print_log(f'KiTSTumorDataset {self.data_root}: {len(unlabelled)} case folders have '
                      f'no {KITS_SEGMENTATION} (e.g. {unlabelled[0]}; KiTS19 test cases) and '
                      'are left out', logger='current', level=30)
        if not cases:
            raise DataError(f'KiTSTumorDataset: no case folder in {self.data_root} holds '
                            f'{KITS_SEGMENTATION}. Fix: download the training segmentations.')
        return cases, self.label_map
