"""Layer-wise learning-rate decay for fine-tuning a pretrained encoder."""
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from ctglip.registry import OPTIM_WRAPPER_CONSTRUCTORS
from ctglip.utils.errors import ConfigError


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus layer-wise learning-rate decay of the backbone.

    A parameter of backbone layer ``i`` (of ``num_layers``, from the backbone's
    ``get_layer_depth(name)``) trains at ``lr * layer_decay_rate ** (num_layers - 1 - i)``:
    the layers near the input, whose pretrained features are the most general, move the
    least. Everything outside the backbone (the new segmentation decoder) keeps ``lr``. The
    decay multiplies whatever the rest of ``paramwise_cfg`` sets (``custom_keys`` lr_mult,
    ``norm_decay_mult``, ...).

    A backbone opts in with ``get_layer_depth(param_name) -> (layer_id, num_layers)``, the
    name relative to the backbone, ``0 <= layer_id < num_layers - 1`` (``num_layers - 1`` is
    the layer outside it). ``NNUNetEncoder3D`` and ``MiT3D`` have it; a third-party backbone
    adds the method to use this constructor.

    Example:
        >>> optim_wrapper = dict(
        ...     type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
        ...     constructor='LayerDecayOptimWrapperConstructor',
        ...     paramwise_cfg=dict(layer_decay_rate=0.75))
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        rate = paramwise_cfg.pop('layer_decay_rate', None)
        self.backbone_key = paramwise_cfg.pop('backbone', 'backbone')
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ConfigError(
                'LayerDecayOptimWrapperConstructor: optim_wrapper.paramwise_cfg.layer_decay_rate '
                f'must be a number in (0, 1], got {rate!r}. Fix: e.g. '
                "paramwise_cfg=dict(layer_decay_rate=0.75), or drop constructor= for no decay.")
        self.layer_decay_rate = float(rate)
        # The default constructor's per-parameter groups are what the decay scales, so build
        # them even where no other paramwise option is set.
        paramwise_cfg.setdefault('custom_keys', {})
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def _backbone(self, model):
        backbone = getattr(model, self.backbone_key, None)
        if backbone is None:
            raise ConfigError(
                f'LayerDecayOptimWrapperConstructor: the model {type(model).__name__} has no '
                f'{self.backbone_key!r}. Fix: set optim_wrapper.paramwise_cfg.backbone to the '
                "attribute that holds the encoder.")
        if not callable(getattr(backbone, 'get_layer_depth', None)):
            raise ConfigError(
                f'LayerDecayOptimWrapperConstructor: the backbone {type(backbone).__name__} has '
                'no get_layer_depth(param_name) -> (layer_id, num_layers). Fix: add the method '
                '(see NNUNetEncoder3D.get_layer_depth), or use a lower encoder learning rate '
                'instead: paramwise_cfg=dict(custom_keys={"backbone": dict(lr_mult=0.1)}).')
        return backbone

    def add_params(self, params, module, prefix='', **kwargs):
        start = len(params)
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:  # the default constructor recurses through here; scale once, at the top
            return
        backbone = self._backbone(module)
        names = {id(p): n for n, p in module.named_parameters()}
        head = f'{self.backbone_key}.'
        scales = {}
        for group in params[start:]:
            name = names[id(group['params'][0])]
            if not name.startswith(head):
                continue
            layer, num_layers = backbone.get_layer_depth(name[len(head):])
            if not 0 <= layer < num_layers - 1:
                raise ConfigError(
                    f'{type(backbone).__name__}.get_layer_depth({name[len(head):]!r}) gave '
                    f'layer {layer} of {num_layers}; backbone layers must be in 0..'
                    f'{num_layers - 2} (num_layers - 1 is the layer outside the backbone).')
            scale = self.layer_decay_rate ** (num_layers - 1 - layer)
            group['lr'] = group.get('lr', self.base_lr) * scale
            scales[layer] = scale
        if scales:
            print_log(f'layer-wise lr decay {self.layer_decay_rate}: {type(backbone).__name__} '
                      f'layers 0-{max(scales)} at lr x {min(scales.values()):.3g} to '
                      f'{max(scales.values()):.3g}; the rest at lr x 1', logger='current')
