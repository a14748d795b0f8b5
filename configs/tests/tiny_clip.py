# The vanilla-CLIP swap of tiny_ctglip.py (global pooler + report text + CLIP loss).
_base_ = './tiny_ctglip.py'
model = dict(
    pooler=dict(_delete_=True, type='GlobalPooler'),
    test_pooler=dict(type='OrganMaskPooler'),
    losses=[dict(type='CLIPLoss', text_source='report')],
)
