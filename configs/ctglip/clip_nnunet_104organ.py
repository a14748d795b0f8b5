# Vanilla CLIP baseline: the whole CT (global pooling) vs. the whole report. Evaluated on
# organ-mask-pooled features of the same encoder (test_pooler), as the paper does.
_base_ = './ctglip_nnunet_104organ.py'
model = dict(
    pooler=dict(_delete_=True, type='GlobalPooler'),
    test_pooler=dict(type='OrganMaskPooler'),
    losses=[dict(type='CLIPLoss', text_source='report')],
)
