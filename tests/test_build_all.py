"""Every name registered in ctglip's registries builds from a config.

A new registration without an entry in CONFIGS fails ``test_every_registered_name_has_a_config``
so that nothing registered goes untested.
"""
import pytest
import torch

from ctglip import registry

# registry attribute -> {name: (config without type, default_args)}
CONFIGS = {
    'BACKBONES': {'NNUNetEncoder3D': dict(arch='tiny'), 'MiT3D': dict(arch='tiny'),
                  'IdentityBackbone': {}, 'PlainConv3D': dict(channels=4)},
    'DECODERS': {n: dict(in_channels=(8, 16), in_strides=(1, 2), num_classes=2)
                 for n in ('UNetDecoder3D', 'SegFormerDecoder3D')},
    'POOLERS': {n: dict(num_organs=4, in_channels=8) for n in (
        'OrganMaskPooler', 'GlobalPooler', 'AttentionOrganPooler', 'OrganGeMPooler',
        'OrganMeanMaxPooler')},
    'TEXT_ENCODERS': {'HFTextEncoder': dict(model_path='{bert}')},
    'LOSSES': {'AnatomyContrastiveLoss': {}, 'DiagnosisContrastiveLoss': dict(dictionary='default'),
               'CLIPLoss': {},
               'DiceCELoss': dict(to_onehot_y=True, softmax=True), 'DiceFocalLoss': {}},
    'REPORT_STRUCTURERS': {'RuleBasedReportStructurer': {}},
    'TRANSFORMS': {
        'LoadCTStudy': {}, 'RandOrganCrop': dict(spatial_size=(8, 8, 8)),
        'CenterPadCrop': dict(spatial_size=(8, 8, 8)), 'RandFlipLR': {}, 'PackCTInputs': {},
        'OrganBoxCrop': {},
        'MultiWindowd': {},
        'CachedPreprocess': dict(transforms=[dict(type='LoadCTStudy')], cache_dir='{tmp}'),
        'Orientationd': dict(keys=['image'], axcodes='RAS'),
        'Spacingd': dict(keys=['image'], pixdim=(1, 1, 1)),
        'ScaleIntensityRanged': dict(keys=['image'], a_min=0, a_max=1, b_min=0, b_max=1),
        'CropForegroundd': dict(keys=['image'], source_key='image'),
        'SpatialPadd': dict(keys=['image'], spatial_size=(8, 8, 8)),
        'DivisiblePadd': dict(keys=['image'], k=8),
        'ResizeWithPadOrCropd': dict(keys=['image'], spatial_size=(8, 8, 8)),
        'RandSpatialCropd': dict(keys=['image'], roi_size=(8, 8, 8)),
        'RandScaleIntensityd': dict(keys=['image'], factors=0.1),
        'RandShiftIntensityd': dict(keys=['image'], offsets=0.1),
        'RandGaussianNoised': dict(keys=['image']),
        'RandAffined': dict(keys=['image']),
        'EnsureTyped': dict(keys=['image']),
        'SelectTumorLabels': dict(values=(2,)),
        'RecordAffine': {}, 'TumorOrganLabels': {}, 'RandTumorCrop': dict(spatial_size=(8, 8, 8)),
    },
    'MODELS': {
        'CTDataPreprocessor': {}, 'ProjectionHead': dict(in_channels=8, norm='layernorm'),
        'OrganIntensityStats': {},
        'CTGLIP': dict(backbone=dict(type='MiT3D', arch='tiny'),
                       pooler=dict(type='OrganMaskPooler'),
                       text_encoder=dict(type='HFTextEncoder', model_path='{bert}'),
                       losses=[dict(type='AnatomyContrastiveLoss')]),
        'CTSegmentor': dict(backbone=dict(type='NNUNetEncoder3D', arch='tiny',
                                          out_indices=(0, 1, 2)),
                            decoder=dict(type='UNetDecoder3D'), roi_size=(16, 16, 16)),
    },
    'DATASETS': {'CTReportDataset': dict(data_root='{data}', pipeline=[]),
                 # lazy_init: built without reading a benchmark (tests/datasets reads them)
                 'MSDTumorDataset': dict(data_root='{tmp}', organ_mask_dir='organ_masks',
                                         lazy_init=True),
                 'KiTSTumorDataset': dict(data_root='{tmp}', lazy_init=True),
                 'TumorManifestDataset': dict(data_root='{tmp}', lazy_init=True)},
    'METRICS': {'ZeroShotOrganRecognition': {}, 'ZeroShotAbnormalityDetection': {},
                'TumorDetection': {}, 'TumorDice': {}},
    'HOOKS': {'RNGStateHook': {}, 'InferenceMetaHook': {}, 'FreezeEncoderHook': dict(iters=10),
              'TumorPredictionWriter': dict(out_dir='{tmp}')},
    'WEIGHT_INITIALIZERS': {'PretrainedEncoder': dict(checkpoint='{tmp}/last_checkpoint')},
    'OPTIM_WRAPPERS': {'MixedPrecisionOptimWrapper': dict(optimizer='{optimizer}')},
    'OPTIM_WRAPPER_CONSTRUCTORS': {'LayerDecayOptimWrapperConstructor': dict(
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        paramwise_cfg=dict(layer_decay_rate=0.75))},
    'MODEL_WRAPPERS': {'CTGLIPDistributedDataParallel': dict(module='{module}'),
                       'CTGLIPFullyShardedDataParallel': dict(module='{module}',
                                                              device_id='cpu')},
}


def own_names(reg):
    reg.import_from_location()
    return set(reg.module_dict)


def test_every_registered_name_has_a_config():
    for attr, configs in CONFIGS.items():
        missing = own_names(getattr(registry, attr)) - set(configs)
        assert not missing, f'{attr}: add build configs for {sorted(missing)}'
    for attr in dir(registry):
        reg = getattr(registry, attr)
        if isinstance(reg, registry.CTGLIPRegistry) and own_names(reg):
            assert attr in CONFIGS, f'registry {attr} holds names but has no configs here'


CASES = [(attr, name) for attr, configs in CONFIGS.items() for name in configs]


@pytest.mark.parametrize('attr, name', CASES, ids=[f'{a}.{n}' for a, n in CASES])
def test_registered_name_builds(attr, name, tiny_bert, tiny_data, tmp_path, request):
    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if value == '{optimizer}':
            return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        if value == '{module}':
            return torch.nn.Linear(2, 2)
        if isinstance(value, str):
            return value.format(bert=tiny_bert, data=tiny_data, tmp=tmp_path)
        return value
    cfg = dict(type=name, **fill(CONFIGS[attr][name]))
    if attr == 'MODEL_WRAPPERS':  # DDP needs a process group
        request.getfixturevalue('process_group')
    obj = getattr(registry, attr).build(cfg)
    assert obj is not None
