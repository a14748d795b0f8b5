"""A tiny random BERT saved as a local Hugging Face model folder (no download)."""
import os
import os.path as osp
import string

SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
WORDS = ('the a an of in is are with no without there this ct image shows evident abnormality '
         'normal left right kidney liver spleen lung lobe upper lower middle pancreas adrenal '
         'gland gallbladder cyst mass stone nodule lesion mm cm').split()


def make_tiny_bert(path, hidden_size=32, num_layers=2, seed=0):
    """Write a random BERT (``hidden_size``, ``num_layers``) and its WordPiece tokenizer.

    The tokenizer is built with the ``tokenizers`` library and saved next to the model so that
    ``AutoTokenizer.from_pretrained(path)`` loads the full vocabulary (transformers 5's
    ``BertTokenizerFast(vocab_file=...)`` would silently build a 5-token one).

    Returns:
        str: ``path``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    if osp.isfile(osp.join(path, 'config.json')):
        return path
    os.makedirs(path, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL + WORDS + chars + ['##' + c for c in chars]
    vocab = list(dict.fromkeys(vocab))
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token='[UNK]'))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B [SEP]',
        special_tokens=[('[CLS]', 2), ('[SEP]', 3)])
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token='[UNK]', pad_token='[PAD]',
                                   cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size,
                        num_hidden_layers=num_layers, num_attention_heads=2,
                        intermediate_size=hidden_size * 2, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    return path
