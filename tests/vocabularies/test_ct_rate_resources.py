"""The CT-RATE vocabulary's prompt file and abnormality dictionary: the rules of
``ctglip/resources/README.md`` (tests/test_resources.py checks the default files)."""
import json
import re

import pytest

from ctglip.vocabularies import load_abnormality_vocab, readable_name

VOCAB = load_abnormality_vocab('ct_rate')
SIDE_WORDS = re.compile(r'\b(left|right|bilateral|bilaterally|lobe|lobes|bases?|apices|apical|'
                        r'bibasilar)\b', re.IGNORECASE)
# groups whose organs are the lung lobes: text without {organ} must fit every lobe
LOBE_GROUPS = ('lung', 'pleura')
MIN_DESCRIPTIONS = 10


@pytest.fixture(scope='module')
def dictionary():
    with open(VOCAB.dictionary_file, encoding='utf-8') as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith('_')}


@pytest.fixture(scope='module')
def prompts():
    with open(VOCAB.prompts_file, encoding='utf-8') as f:
        return json.load(f)


def _well_formed(text, where):
    assert text == text.strip() and '  ' not in text and text.endswith('.'), where
    assert text[0].isupper() or text[0].isdigit(), where
    assert set(re.findall(r'\{[^{}]*\}', text)) <= {'{organ}'}, where
    text.format(organ='x')


def test_both_files_cover_the_vocabulary_exactly(dictionary, prompts):
    assert VOCAB.coverage_problems(dictionary) == []
    assert VOCAB.coverage_problems(prompts['abnormalities']) == []


def test_dictionary_entries(dictionary):
    seen = set()
    for group, table in dictionary.items():
        for name, texts in table.items():
            where = f'{group}/{name}'
            assert len(texts) >= MIN_DESCRIPTIONS, where
            for text in texts:
                _well_formed(text, f'{where}: {text!r}')
                assert text.lower() not in seen, f'{where}: duplicate {text!r}'
                seen.add(text.lower())
                assert not re.search(r'\b(no|not|normal|unremarkable|without)\b', text, re.I), \
                    f'{where}: a negation in {text!r}'
                if group in LOBE_GROUPS and '{organ}' not in text:
                    assert not SIDE_WORDS.search(text), f'{where}: {text!r} names a side or lobe'
            if group in LOBE_GROUPS:
                assert sum('{organ}' in t for t in texts) >= len(texts) // 3, where


def test_prompts(prompts, dictionary):
    entries = {t.lower() for table in dictionary.values() for texts in table.values()
               for t in texts}
    for key in ('organ_templates', 'normal_templates'):
        assert all('{organ}' in t for t in prompts[key])
    for group, table in prompts['abnormalities'].items():
        for name, pn in table.items():
            assert set(pn) == {'positive', 'negative'} and len(pn['positive']) >= 3
            assert not set(pn['positive']) & set(pn['negative'])
            for text in pn['positive'] + pn['negative']:
                _well_formed(text, f'{group}/{name}: {text!r}')
                assert text.lower() not in entries, f'{group}/{name}: copies {text!r}'
                if group in LOBE_GROUPS and '{organ}' not in text:
                    assert not SIDE_WORDS.search(text)
            assert not any(t.startswith('No ') for t in pn['positive'])


def test_organ_placeholder_reads_well_for_every_organ(dictionary, prompts):
    for group, organs in VOCAB.groups.items():
        texts = [t for ts in dictionary[group].values() for t in ts] + [
            t for pn in prompts['abnormalities'][group].values() for t in pn['positive']]
        for organ in organs:
            name = readable_name(organ)
            for text in texts:
                assert '{' not in text.format(organ=name)
            if group in LOBE_GROUPS:
                assert 'lung' in name or name == 'pleura'
