"""Store what inference needs (preprocessing, vocabulary, prompts, thresholds) in checkpoints."""
from mmengine.hooks import Hook

from ctglip.registry import HOOKS


@HOOKS.register_module()
class InferenceMetaHook(Hook):
    """Write ``meta['ctglip_inference']`` into every checkpoint of a ``CTGLIP`` run.

    The schema is ``ctglip.apis.inference_meta``'s: model config, organ vocabulary, label
    scheme, preprocessing (orientation, spacing, HU windows, view, the test pipeline), the
    prompt set itself, the temperature, the ctglip version and the abnormality thresholds of
    the latest validation in this run (``<prefix>/abn_threshold/...`` metrics), so that
    ``tools/infer.py`` and ``tools/export.py`` need nothing but the checkpoint. Models of other
    types are left alone.
    """
    priority = 'VERY_LOW'

    def __init__(self):
        self.thresholds = None
        self.thresholds_source = None
        self._warned = False

    def after_val_epoch(self, runner, metrics=None):
        from ctglip.apis.inference_meta import thresholds_from_metrics
        found = thresholds_from_metrics(metrics)
        if found:
            self.thresholds = found
            self.thresholds_source = ('chosen on the validation split during training '
                                      f'(iteration {runner.iter})')

    def after_load_checkpoint(self, runner, checkpoint):
        from ctglip.apis.inference_meta import META_KEY
        stored = (checkpoint.get('meta') or {}).get(META_KEY) or {}
        if stored.get('thresholds') and self.thresholds is None:  # resume keeps them
            self.thresholds = stored['thresholds']
            self.thresholds_source = stored.get('thresholds_source')

    def before_save_checkpoint(self, runner, checkpoint):
        from mmengine.model import is_model_wrapper

        from ctglip.apis.inference_meta import META_KEY, build_inference_meta
        from ctglip.models.ctglip import CTGLIP
        from ctglip.utils.errors import CTGLIPError
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, CTGLIP):
            return
        try:
            meta = build_inference_meta(runner.cfg, model, self.thresholds,
                                        self.thresholds_source)
        except CTGLIPError as e:  # a checkpoint without it still resumes training
            if not self._warned:
                runner.logger.warning(f'checkpoints of this run carry no inference metadata '
                                      f'(tools/infer.py will rebuild it from the config): {e}')
                self._warned = True
            return
        checkpoint.setdefault('meta', {})[META_KEY] = meta
