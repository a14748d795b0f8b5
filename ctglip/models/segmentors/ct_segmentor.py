"""CTSegmentor: a (pretrained) ctglip backbone with a segmentation decoder, fine-tuned for
tumor segmentation, and a per-organ tumor-presence read-out for tumor detection."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from ctglip.datasets.organs import organ_vocabulary
from ctglip.registry import BACKBONES, DECODERS, LOSSES, MODELS
from ctglip.utils.errors import ConfigError, DataError

DEFAULT_TUMOR_ORGANS = ('liver', 'pancreas', 'kidney_left', 'kidney_right')
DEFAULT_LOSS = dict(type='DiceCELoss', to_onehot_y=True, softmax=True, include_background=False,
                    batch=True)


@MODELS.register_module()
class CTSegmentor(BaseModel):
    """Tumor segmentation and detection on CT: backbone levels -> decoder -> 2-class logits.

    Training (``loss``) takes crops and their ``tumor_mask``; the logits are upsampled to the
    crop and scored with MONAI's Dice + cross-entropy (``DiceCELoss``, Dice on the tumor class,
    Dice and CE over the whole batch). Inference (``predict``) runs MONAI's
    ``sliding_window_inference`` over each whole volume with windows of ``roi_size`` and writes,
    per data sample:

    - ``pred_tumor_mask`` (LongTensor, D x H x W, 0/1): tumor probability > 0.5, on the grid of
      the input volume (the batch padding is cut off; ``organ_label`` and ``tumor_mask`` are
      cut back the same way), so the sample's ``affine`` (metainfo, from ``RecordAffine``)
      places it in the world;
    - ``tumor_scores`` ({organ: probability}): the tumor-presence read-out for detection.

    Detection read-out: the predicted mask, not a classification head on organ-pooled
    features. An organ's score is the mean of its ``score_topk`` highest voxel tumor
    probabilities inside its organ mask (``score_topk=1`` is the maximum; 8 voxels make one
    stray voxel count for little). Why: (1) one model and one loss give both tasks, so the
    detection numbers measure the same encoder as the Dice numbers, with no second head whose
    training (class balance, its learning rate) would confound the comparison of
    initialisations; (2) training runs on crops, where an organ is often cut and a per-organ
    label of the whole study does not hold for the crop, while the voxel labels do; (3) at test
    the whole volume is seen window by window, and a mask read-out needs no pooling across
    windows; (4) the score is a calibrated probability that ranks organs by the strongest tumor
    evidence, which is what AUC measures. The cost: a tumor too small to segment is also
    missed by detection. Organs scored: ``tumor_organs`` plus every organ of the sample's
    ``tumor_labels``, where present in ``organ_label`` (TumorDetection needs a score for every
    labelled organ).

    Args:
        backbone (dict): BACKBONES config; give ``out_indices`` (the levels the decoder reads)
            and, to start from pretraining, ``init_cfg=dict(type='PretrainedEncoder', ...)``
            (see :mod:`ctglip.models.segmentors.pretrained`). A backbone without
            ``out_indices`` (or ``level_channels``) gives its one map
            (``out_channels``, ``out_stride``).
        decoder (dict): DECODERS config; built with ``in_channels``, ``in_strides`` (of the
            backbone's levels) and ``num_classes=2``.
        organ_vocab: the organ vocabulary of the organ label maps.
        loss (dict): LOSSES config of the segmentation loss (logits ``B x 2 x ...``, target
            ``B x 1 x ...``).
        roi_size (Sequence[int]): sliding-window size (voxels); a multiple of the backbone's
            ``size_divisor``; normally the training crop size.
        sw_batch_size (int): windows per forward pass.
        sw_overlap (float): overlap of neighbouring windows.
        sw_mode (str): blending of overlapping windows (``gaussian`` or ``constant``).
        tumor_organs (Sequence[str]): organs given a tumor score.
        score_topk (int): voxels averaged into an organ's score.
        min_tumor_voxels (int): post-processing, as nnU-Net's: connected components
            (26-connectivity) of the predicted mask with fewer voxels are removed from the
            mask, and their voxels' tumor probability is set to 0 before the organ scores are
            read. 0 (the default) keeps every component. Choose it on the validation split,
            below the smallest tumor worth finding (a 10 mm sphere is 4 voxels at 5 mm).
        nonfinite (str): ``stop`` or ``skip`` on a non-finite loss or gradient, as CTGLIP.
        data_preprocessor (dict, optional): defaults to ``CTDataPreprocessor`` padded to the
            backbone's ``size_divisor``.
        init_cfg (dict, optional): mmengine init config of the whole model.

    Example:
        >>> model = MODELS.build(dict(
        ...     type='CTSegmentor', roi_size=(16, 16, 16),
        ...     backbone=dict(type='NNUNetEncoder3D', arch='tiny', out_indices=(0, 1, 2)),
        ...     decoder=dict(type='UNetDecoder3D')))
    """

    def __init__(self, backbone, decoder, organ_vocab='totalseg_v1', loss=DEFAULT_LOSS,
                 roi_size=(64, 64, 64), sw_batch_size=1, sw_overlap=0.25, sw_mode='gaussian',
                 tumor_organs=DEFAULT_TUMOR_ORGANS, score_topk=8, min_tumor_voxels=0,
                 nonfinite='stop', data_preprocessor=None, init_cfg=None):
        backbone = BACKBONES.build(backbone)
        if data_preprocessor is None:
            data_preprocessor = dict(type='CTDataPreprocessor')
        if isinstance(data_preprocessor, dict) and data_preprocessor.get('size_divisor') is None:
            data_preprocessor = dict(data_preprocessor,
                                     size_divisor=getattr(backbone, 'size_divisor', None))
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = backbone
        in_channels, in_strides = backbone_levels(backbone)
        self.decoder = DECODERS.build(decoder, default_args=dict(
            in_channels=in_channels, in_strides=in_strides, num_classes=2))
        loss = dict(loss)
        if isinstance(loss.get('weight'), (list, tuple)):  # CE class weights: a tensor for MONAI
            loss['weight'] = torch.tensor(loss['weight'], dtype=torch.float32)
        self.loss_fn = LOSSES.build(loss)
        self.organ_vocab = organ_vocabulary(organ_vocab)
        unknown = [o for o in tumor_organs if o not in self.organ_vocab]
        if unknown:
            raise ConfigError(f'CTSegmentor tumor_organs {unknown} are not organs of the organ '
                              f'vocabulary ({len(self.organ_vocab)} organs). Fix: use '
                              "TotalSegmentator names such as 'liver', 'kidney_left'.")
        self.tumor_organs = tuple(tumor_organs)
        self.roi_size = tuple(int(s) for s in roi_size)
        divisor = int(getattr(backbone, 'size_divisor', 1) or 1)
        if len(self.roi_size) != 3 or any(s < 1 or s % divisor for s in self.roi_size):
            raise ConfigError(f'CTSegmentor roi_size {self.roi_size} must be three sizes, each a '
                              f"multiple of the backbone's size_divisor {divisor}. Fix: e.g. "
                              'roi_size = the training crop size.')
        self.sw_batch_size = int(sw_batch_size)
        self.sw_overlap = float(sw_overlap)
        self.sw_mode = sw_mode
        if int(score_topk) < 1:
            raise ConfigError(f'CTSegmentor score_topk={score_topk!r} must be >= 1.')
        self.score_topk = int(score_topk)
        if not isinstance(min_tumor_voxels, int) or min_tumor_voxels < 0:
            raise ConfigError(f'CTSegmentor min_tumor_voxels={min_tumor_voxels!r} must be an '
                              'int >= 0 (0 keeps every predicted component).')
        self.min_tumor_voxels = min_tumor_voxels
        if nonfinite not in ('stop', 'skip'):
            raise ConfigError(f"model.nonfinite={nonfinite!r}; use 'stop' or 'skip'.")
        self.nonfinite = nonfinite
        self.skipped_batches = 0

    # -- the network ---------------------------------------------------------------------------
    def logits(self, inputs):
        """``B x C x D x H x W`` -> ``B x 2 x D x H x W`` logits (background, tumor)."""
        feats = self.backbone(inputs)
        feats = list(feats) if isinstance(feats, (tuple, list)) else [feats]
        out = self.decoder(feats)
        if tuple(out.shape[2:]) != tuple(inputs.shape[2:]):
            out = F.interpolate(out, size=inputs.shape[2:], mode='trilinear',
                                align_corners=False)
        return out

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs)
        raise ValueError(f"mode={mode!r}; use 'loss', 'predict' or 'tensor'.")

    # -- training ------------------------------------------------------------------------------
    def train_step(self, data, optim_wrapper):
        """mmengine's train step with ctglip's guard against non-finite losses and gradients."""
        from ctglip.engine.train_step import guarded_train_step
        return guarded_train_step(self, self, data, optim_wrapper)

    def handle_non_finite(self, what, optim_wrapper, log_vars):
        """Stop (raise) or skip and count a batch with a non-finite loss or gradient."""
        from ctglip.models.ctglip import CTGLIP
        return CTGLIP.handle_non_finite(self, what, optim_wrapper, log_vars)  # one policy

    def loss(self, inputs, data_samples):
        """Dice + CE of the crops against their tumor masks.

        Returns:
            dict: ``loss_seg`` and ``tumor_fraction`` (the share of tumor voxels in the batch,
            logged: a batch without tumor trains only the background).
        """
        missing = [s.get('case_id', '?') for s in data_samples if 'tumor_mask' not in s]
        if missing:
            raise DataError(f'case {missing[0]!r} has no tumor_mask, which fine-tuning needs. '
                            'Fix: train on a fine-tune dataset (TumorManifestDataset, '
                            'MSDTumorDataset, KiTSTumorDataset) whose pipeline loads it.')
        target = torch.stack([s.tumor_mask for s in data_samples]).to(inputs.device)[:, None]
        logits = self.logits(inputs)
        loss = self.loss_fn(logits.float(), target.float())
        return dict(loss_seg=loss, tumor_fraction=(target > 0).float().mean())

    # -- inference -----------------------------------------------------------------------------
    def predict(self, inputs, data_samples):
        """Whole-volume sliding-window inference; see the class docstring for the outputs."""
        from monai.inferers import sliding_window_inference
        for i, sample in enumerate(data_samples):
            shape = tuple(int(s) for s in sample.metainfo.get('img_shape', inputs.shape[2:]))
            volume = inputs[i:i + 1, :, :shape[0], :shape[1], :shape[2]]
            logits = sliding_window_inference(volume, self.roi_size, self.sw_batch_size,
                                              self.logits, overlap=self.sw_overlap,
                                              mode=self.sw_mode)
            prob = logits.float().softmax(1)[0, 1]
            for key in ('organ_label', 'tumor_mask'):  # undo the batch padding
                if key in sample:
                    sample.set_data({key: sample.get(key)[:shape[0], :shape[1], :shape[2]]})
            mask = prob > 0.5
            if self.min_tumor_voxels:
                small = small_components(mask, self.min_tumor_voxels)
                mask = mask & ~small
                prob = prob.masked_fill(small, 0.0)
            sample.pred_tumor_mask = mask.long()
            organs = list(self.tumor_organs) + [o for o in (sample.get('tumor_labels') or {})
                                                if o not in self.tumor_organs]
            sample.tumor_scores = self.organ_scores(prob, sample.organ_label.to(prob.device),
                                                    organs)
        return data_samples

    def organ_scores(self, prob, organ_label, organs):
        """``{organ: mean of its score_topk highest tumor probabilities}`` for the organs of
        ``organs`` present in ``organ_label`` (``D x H x W``, vocabulary indices)."""
        scores = {}
        for organ in organs:
            if organ not in self.organ_vocab:
                raise DataError(f'tumor_labels name {organ!r}, which is not an organ of the '
                                "model's organ vocabulary. Fix: use TotalSegmentator names.")
            inside = prob[organ_label == self.organ_vocab.index(organ) + 1]
            if inside.numel():
                k = min(self.score_topk, inside.numel())
                scores[organ] = float(inside.topk(k).values.mean())
        return scores


def small_components(mask, min_voxels):
    """Voxels of the connected components (26-connectivity) of a boolean ``D x H x W`` mask
    that have fewer than ``min_voxels`` voxels, as a boolean mask on the same device."""
    import numpy as np
    from scipy import ndimage
    labels, count = ndimage.label(mask.cpu().numpy(), structure=np.ones((3, 3, 3), bool))
    if not count:
        return torch.zeros_like(mask)
    sizes = np.bincount(labels.ravel())
    small = (sizes < min_voxels)
    small[0] = False  # the background
    return torch.from_numpy(small[labels]).to(mask.device)


def backbone_levels(backbone):
    """``(channels, strides)`` of the maps a backbone returns, in its ``out_indices`` order.

    A backbone with ``out_indices`` and ``level_channels`` / ``level_strides`` (ctglip's)
    gives those levels; otherwise its single map (``out_channels``, ``out_stride``).
    """
    indices = getattr(backbone, 'out_indices', None)
    if indices is not None and hasattr(backbone, 'level_channels'):
        return ([backbone.level_channels[i] for i in indices],
                [backbone.level_strides[i] for i in indices])
    missing = [a for a in ('out_channels', 'out_stride') if not hasattr(backbone, a)]
    if missing:
        raise ConfigError(f'backbone {type(backbone).__name__} has no {missing}: a segmentor '
                          'needs the channels and stride of the maps it returns. Fix: give it '
                          'out_channels and out_stride attributes (or out_indices with '
                          'level_channels and level_strides).')
    return [backbone.out_channels], [backbone.out_stride]
