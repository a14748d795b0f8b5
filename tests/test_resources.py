"""Checks of the abnormality text resources: the training dictionary and the zero-shot prompts.

Fast and data-only: stdlib and ``ctglip.datasets.organs``.
"""
import json
import os.path as osp
import re

import pytest

from ctglip.datasets import organs

RESOURCES = osp.join(osp.dirname(osp.dirname(osp.abspath(organs.__file__))), 'resources')
DICTIONARY_FILE = osp.join(RESOURCES, 'abnormality_dictionary.json')
PROMPTS_FILE = osp.join(RESOURCES, 'zeroshot_prompts.json')

PAIRED_GROUPS = tuple(g for g, members in organs.ORGAN_GROUPS.items() if len(members) > 1)
SIDE_WORDS = re.compile(r'\b(left|right|bilateral|bilaterally|lobe|lobes)\b', re.IGNORECASE)
PLACEHOLDER = re.compile(r'\{[^{}]*\}')

MIN_DESCRIPTIONS = 10


def _load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def dictionary():
    data = _load(DICTIONARY_FILE)
    return {k: v for k, v in data.items() if not k.startswith('_')}


@pytest.fixture(scope='module')
def prompts():
    return _load(PROMPTS_FILE)


def _dictionary_entries(dictionary):
    for group, abns in dictionary.items():
        for abn, texts in abns.items():
            for text in texts:
                yield group, abn, text


def _prompt_texts(prompts):
    for text in prompts['organ_templates']:
        yield 'organ_templates', None, text
    for text in prompts['normal_templates']:
        yield 'normal_templates', None, text
    for group, abns in prompts['abnormalities'].items():
        for abn, pn in abns.items():
            for kind in ('positive', 'negative'):
                for text in pn[kind]:
                    yield group, f'{abn}/{kind}', text


def _check_text(text, where):
    assert isinstance(text, str), f'{where}: not a string: {text!r}'
    assert text.strip(), f'{where}: empty text'
    assert text == text.strip(), f'{where}: leading/trailing whitespace in {text!r}'
    assert '  ' not in text, f'{where}: double space in {text!r}'
    assert text.endswith('.'), f'{where}: does not end with a period: {text!r}'
    assert not text.startswith('{'), f'{where}: starts with a placeholder: {text!r}'
    assert text[0].isupper() or text[0].isdigit(), f'{where}: not capitalised: {text!r}'
    for field in PLACEHOLDER.findall(text):
        assert field == '{organ}', f'{where}: unknown placeholder {field} in {text!r}'
    filled = text.format(organ='x')  # must not raise
    assert '{' not in filled and '}' not in filled, f'{where}: stray brace in {text!r}'


# ---------------------------------------------------------------- abnormality dictionary

def test_dictionary_parses_and_has_about():
    data = _load(DICTIONARY_FILE)
    assert isinstance(data, dict)
    assert isinstance(data.get('_about'), str) and data['_about']


def test_dictionary_keys_match_vocabulary(dictionary):
    assert set(dictionary) == set(organs.ABNORMALITIES)
    for group, names in organs.ABNORMALITIES.items():
        assert set(dictionary[group]) == set(names), group


def test_dictionary_counts_and_uniqueness(dictionary):
    seen = {}
    for group, abns in dictionary.items():
        for abn, texts in abns.items():
            assert isinstance(texts, list), f'{group}/{abn}'
            assert len(texts) >= MIN_DESCRIPTIONS, f'{group}/{abn}: only {len(texts)} descriptions'
            for text in texts:
                key = text.lower()
                assert key not in seen, f'{group}/{abn}: {text!r} duplicates {seen[key]}'
                seen[key] = f'{group}/{abn}'


def test_dictionary_texts_well_formed(dictionary):
    for group, abn, text in _dictionary_entries(dictionary):
        _check_text(text, f'{group}/{abn}')


def test_dictionary_has_no_negations(dictionary):
    for group, abn, text in _dictionary_entries(dictionary):
        where = f'{group}/{abn}: {text!r}'
        assert not text.startswith('No '), where
        assert 'no evident' not in text.lower(), where
        assert not re.search(r'\b(no|not|normal|unremarkable)\b', text, re.IGNORECASE), where


def test_dictionary_paired_groups_use_organ_placeholder(dictionary):
    for group in PAIRED_GROUPS:
        for abn, texts in dictionary[group].items():
            with_organ = sum('{organ}' in t for t in texts)
            assert with_organ >= len(texts) // 3, f'{group}/{abn}: {with_organ} use {{organ}}'
            for text in texts:
                if '{organ}' not in text:
                    assert not SIDE_WORDS.search(text), (
                        f'{group}/{abn}: {text!r} names a side or lobe without {{organ}}')


def test_dictionary_fills_every_organ(dictionary):
    for group, members in organs.ORGAN_GROUPS.items():
        for organ in members:
            name = organs.readable_name(organ)
            for abn, texts in dictionary[group].items():
                for text in texts:
                    filled = text.format(organ=name)
                    if '{organ}' in text:
                        assert name in filled


# ---------------------------------------------------------------- zero-shot prompts

def test_prompts_top_level_keys(prompts):
    assert set(prompts) == {'organ_templates', 'abnormalities', 'normal_templates'}
    for key in ('organ_templates', 'normal_templates'):
        assert isinstance(prompts[key], list) and prompts[key], key
        for text in prompts[key]:
            assert '{organ}' in text, f'{key}: {text!r} lacks {{organ}}'


def test_prompts_keys_match_vocabulary(prompts):
    abns = prompts['abnormalities']
    assert set(abns) == set(organs.ABNORMALITIES)
    for group, names in organs.ABNORMALITIES.items():
        assert set(abns[group]) == set(names), group
        for name in names:
            assert set(abns[group][name]) == {'positive', 'negative'}, f'{group}/{name}'


def test_prompts_counts(prompts):
    for group, abns in prompts['abnormalities'].items():
        for abn, pn in abns.items():
            for kind in ('positive', 'negative'):
                assert isinstance(pn[kind], list), f'{group}/{abn}/{kind}'
                assert len(pn[kind]) >= 1, f'{group}/{abn}: no {kind} prompt'
                assert len(set(pn[kind])) == len(pn[kind]), f'{group}/{abn}/{kind}: duplicates'
            assert not set(pn['positive']) & set(pn['negative']), f'{group}/{abn}'


def test_prompts_texts_well_formed(prompts):
    for where, kind, text in _prompt_texts(prompts):
        _check_text(text, f'{where}/{kind}')


def test_prompts_paired_groups_use_organ_placeholder(prompts):
    for group in PAIRED_GROUPS:
        for abn, pn in prompts['abnormalities'][group].items():
            for text in pn['positive'] + pn['negative']:
                assert '{organ}' in text, f'{group}/{abn}: {text!r} lacks {{organ}}'


def test_positive_prompts_are_not_negations(prompts):
    for group, abns in prompts['abnormalities'].items():
        for abn, pn in abns.items():
            for text in pn['positive']:
                assert not text.startswith('No '), f'{group}/{abn}: {text!r}'
                assert 'no evident' not in text.lower(), f'{group}/{abn}: {text!r}'


def test_prompts_differ_from_dictionary(dictionary, prompts):
    entries = {t.lower() for _, _, t in _dictionary_entries(dictionary)}
    for where, kind, text in _prompt_texts(prompts):
        assert text.lower() not in entries, f'{where}/{kind}: {text!r} copies a dictionary entry'
