# Anatomy contrastive learning only: organ embeddings vs. organ descriptions.
_base_ = './ctglip_mit_104organ.py'
model = dict(losses=[
    dict(type='AnatomyContrastiveLoss',
         templates=['This is the {organ}.', 'A CT image of the {organ}.',
                    'The {organ} on computed tomography.']),
])
