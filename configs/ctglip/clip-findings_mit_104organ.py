# Vanilla CLIP with findings-only text: the sentences of the abnormal organs (or "No evident
# abnormality."), so all-normal studies share one text and count as positives of each other.
# A fairer baseline than whole reports, whose embeddings are nearly identical.
_base_ = './clip_mit_104organ.py'
model = dict(losses=[dict(type='CLIPLoss', text_source='findings')])
