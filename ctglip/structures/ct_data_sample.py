"""The data sample that carries one CT study through the pipeline, the model and the metrics."""
from mmengine.structures import BaseDataElement


class CTDataSample(BaseDataElement):
    """One CT study.

    Metainfo (set once per study): ``case_id``, ``patient_id``, ``split``, ``spacing``
    (mm, after resampling), ``img_path``, ``organ_vocab`` (tuple of organ names).

    Data fields (set by the pipeline or the model; all optional):

    - ``organ_label`` (LongTensor, D x H x W): organ label map in vocabulary indices
      (0 = background, ``i + 1`` = ``organ_vocab[i]``), aligned with the image.
    - ``report`` (str), ``findings`` ({organ: [sentence]}), ``abnormalities``
      ({organ: [abnormality]}): the texts and ground truth of the study.
    - ``tumor_mask`` (LongTensor, D x H x W).
    - ``organ_cells`` (metainfo dict, from ``PackCTInputs(organ_cells_stride=...)``): the
      label map's overlap with the pooled feature grid, computed in the data loader's workers
      (:func:`~ctglip.models.poolers.base.study_organ_cells`).
    - set by ``CTGLIP.predict``: ``organ_embeds`` (K x C, L2-normalised), ``organ_valid``
      (K bool), ``organ_logits`` (K x V similarities to the organ prompts, scaled by the
      temperature), ``abn_scores`` ({organ: {abnormality: probability}}), ``global_embed`` (C).
    """
