"""All of ctglip's registries, in one place.

Runner-built kinds are children of mmengine's root registries under the scope ``ctglip``;
the domain kinds (backbones, decoders, poolers, text encoders, losses, report structurers) are
registries of their own so a backbone and a text encoder can never collide by name.
Every registry lists the modules that fill it (``locations``), so ``import ctglip`` is all
a user needs: the modules are imported the first time a registry is asked for a name.
"""
import difflib

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

from ctglip.utils.errors import UnknownTypeError

SCOPE = 'ctglip'


class CTGLIPRegistry(Registry):
    """A registry whose unknown-type error names the registry, its entries and the nearest match.

    mmengine's own message only says the name is missing; users of a config mostly mistype a
    name, so the nearest registered names are the fix.
    """

    def get(self, key):
        obj = super().get(key)
        if obj is None and isinstance(key, str) and '.' not in key:
            raise UnknownTypeError(self.unknown_type_message(key))
        return obj

    def __contains__(self, key):
        try:
            return self.get(key) is not None
        except (UnknownTypeError, RuntimeError):
            return False

    def all_names(self):
        """Names registered here and in the parents (what a config may use), sorted."""
        self.import_from_location()
        names = set(self.module_dict)
        parent = self.parent
        while parent is not None:
            parent.import_from_location()
            names.update(parent.module_dict)
            parent = parent.parent
        return sorted(names)

    def unknown_type_message(self, key):
        names = self.all_names()
        close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
        hint = (f'did you mean {", ".join(repr(c) for c in close)}?'
                if close else 'check the spelling, or import the module that registers it '
                "(custom_imports=dict(imports=['your.module']) in the config)")
        shown = ', '.join(names) if len(names) <= 40 else ', '.join(names[:40]) + ', ...'
        return (f"type={key!r} is not in ctglip's {self.name!r} registry; {hint} "
                f'Registered names: {shown}.')


def _child(name, parent, locations):
    return CTGLIPRegistry(name, parent=parent, scope=SCOPE, locations=locations)


# Runner-built kinds: children of mmengine's roots.
RUNNERS = _child('runner', MMENGINE_RUNNERS, ['ctglip.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS, ['ctglip.engine'])
LOOPS = _child('loop', MMENGINE_LOOPS, ['ctglip.engine'])
HOOKS = _child('hook', MMENGINE_HOOKS, ['ctglip.engine.hooks'])
DATASETS = _child('dataset', MMENGINE_DATASETS, ['ctglip.datasets.ct_report_dataset',
                                                   'ctglip.datasets.tumor_layouts',
                                                   'ctglip.datasets.tumor_manifest'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS,
                       ['ctglip.datasets.ct_report_dataset'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, ['ctglip.datasets.transforms'])
MODELS = _child('model', MMENGINE_MODELS, ['ctglip.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, ['ctglip.engine'])
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS, ['ctglip.models'])
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ['ctglip.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, ['ctglip.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, ['ctglip.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS, ['ctglip.engine'])
METRICS = _child('metric', MMENGINE_METRICS, ['ctglip.evaluation'])
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, ['ctglip.evaluation'])
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, ['ctglip.visualization'])
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, ['ctglip.visualization'])
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, ['ctglip.engine'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['ctglip.datasets'])

# Domain kinds: registries of their own, built by the model from its config.
BACKBONES = CTGLIPRegistry('backbone', scope=SCOPE, locations=['ctglip.models.backbones'])
# Segmentation decoders over a backbone's levels (fine-tuning); a project that brings a
# backbone registers its decoder here too.
DECODERS = CTGLIPRegistry('decoder', scope=SCOPE, locations=['ctglip.models.decoders'])
POOLERS = CTGLIPRegistry('pooler', scope=SCOPE, locations=['ctglip.models.poolers'])
TEXT_ENCODERS = CTGLIPRegistry('text_encoder', scope=SCOPE,
                               locations=['ctglip.models.text_encoders'])
LOSSES = CTGLIPRegistry('loss', scope=SCOPE, locations=['ctglip.models.losses'])
REPORT_STRUCTURERS = CTGLIPRegistry('report_structurer', scope=SCOPE,
                                    locations=['ctglip.datasets.report_parsing'])
