"""Abnormality vocabularies as data: organ groups, their organs and their abnormalities.

A vocabulary is a JSON file (format in ``docs/vocabularies.md``)::

    {"name": "default",
     "prompts": "zeroshot_prompts.json",          # default zero-shot prompt file
     "dictionary": "abnormality_dictionary.json",  # default abnormality dictionary
     "groups": {"kidney": {"organs": ["kidney_left", "kidney_right"],
                           "abnormalities": ["kidney cyst", "kidney stone", "hydronephrosis"]},
                ...}}

The model, the losses, the report structurer and the metrics all take one vocabulary from the
config key ``abnormality_vocab`` (a shipped name such as ``default`` or ``ct_rate``, a JSON
path, or the same object inline as a dict). Group names key the prompt and dictionary files
and the per-group metric keys; organ names are those of the label scheme (TotalSegmentator's,
or a class map's). An abnormality belongs to exactly one group; an organ may belong to several
groups (CT-RATE scores pleural effusion and the parenchymal findings on the same lung lobes),
and then has the abnormalities of all of them. Organs of a group that the model's organ
vocabulary lacks are skipped, so one vocabulary can name the organs of several schemes
(v1's five heart structures and v2's one ``heart``).
"""
import json
import os
import os.path as osp
import re
from functools import lru_cache

from ctglip.utils.errors import ConfigError

VOCABULARY_DIR = osp.dirname(osp.abspath(__file__))
RESOURCES_DIR = osp.join(osp.dirname(VOCABULARY_DIR), 'resources')
DEFAULT_NAME = 'default'
_NAME = re.compile(r'^[a-z][a-z0-9_]*$')


def shipped_vocabularies():
    """Names of the vocabularies shipped in ``ctglip/vocabularies`` (``default``, ``ct_rate``)."""
    return tuple(sorted(f[:-5] for f in os.listdir(VOCABULARY_DIR)
                        if f.endswith('.json') and _NAME.match(f[:-5])))


class AbnormalityVocabulary:
    """Organ groups, the organs of each group and the abnormalities of each group.

    Args:
        groups (Mapping): ``{group: {"organs": [organ, ...], "abnormalities": [name, ...]}}``
            in the order used for tables and metric keys.
        name (str): what error messages and logs call it.
        prompts (str, optional): path of the default zero-shot prompt file.
        dictionary (str, optional): path of the default abnormality dictionary.
        label_columns (Mapping, optional): ``{column of a dataset's label table: abnormality}``
            (CT-RATE's ``Lung nodule`` -> ``lung nodule``), read by dataset converters.
        source (str): where it came from (a file path or ``config``), named in errors.

    Example:
        >>> vocab = load_abnormality_vocab('default')
        >>> vocab.groups['kidney'], vocab.group_of('kidney stone')
        (('kidney_left', 'kidney_right'), 'kidney')
    """

    def __init__(self, groups, name='custom', prompts=None, dictionary=None, label_columns=None,
                 source='config'):
        where = f'abnormality vocabulary {name!r} ({source})'
        if not isinstance(groups, dict) or not groups:
            raise ConfigError(f'{where}: "groups" must be a non-empty object {{group: '
                              '{"organs": [...], "abnormalities": [...]}}.')
        self.name = name
        self.source = source
        self.groups, self.abnormalities, self.notes = {}, {}, {}
        owner = {}
        for group, spec in groups.items():
            if not isinstance(group, str) or not _NAME.match(group):
                raise ConfigError(f'{where}: group name {group!r} must be lower case letters, '
                                  'digits and underscores (it keys prompt files and metrics).')
            if not isinstance(spec, dict):
                raise ConfigError(f'{where}: group {group!r} must be an object with "organs" '
                                  'and "abnormalities".')
            organs, names = spec.get('organs'), spec.get('abnormalities')
            for field, values in (('organs', organs), ('abnormalities', names)):
                if not isinstance(values, (list, tuple)) or not values or not all(
                        isinstance(v, str) and v.strip() for v in values):
                    raise ConfigError(f'{where}: group {group!r} needs "{field}", a non-empty '
                                      'list of names.')
                if len(set(values)) != len(values):
                    raise ConfigError(f'{where}: group {group!r} lists a name of "{field}" '
                                      'twice.')
            for abnormality in names:
                if abnormality != abnormality.lower() or abnormality != abnormality.strip():
                    raise ConfigError(f'{where}: abnormality {abnormality!r} of group {group!r} '
                                      'must be lower case without outer spaces.')
                if abnormality in owner:
                    raise ConfigError(f'{where}: abnormality {abnormality!r} is in groups '
                                      f'{owner[abnormality]!r} and {group!r}; an abnormality '
                                      'belongs to one group.')
                owner[abnormality] = group
            self.groups[group] = tuple(organs)
            self.abnormalities[group] = tuple(names)
            if spec.get('note'):
                self.notes[group] = str(spec['note'])
        self._group_of = owner
        self._organ_groups = {}
        for group, organs in self.groups.items():
            for organ in organs:
                self._organ_groups.setdefault(organ, []).append(group)
        self.prompts_file = prompts
        self.dictionary_file = dictionary
        self.label_columns = dict(label_columns or {})
        unknown = sorted(set(self.label_columns.values()) - set(owner))
        if unknown:
            raise ConfigError(f'{where}: label_columns map to {unknown}, which no group has.')

    # -- lookups -----------------------------------------------------------------------------
    @property
    def names(self):
        """Every abnormality name, in group order."""
        return tuple(a for names in self.abnormalities.values() for a in names)

    @property
    def organs(self):
        """Every organ of every group, in group order, each once."""
        return tuple(self._organ_groups)

    def group_of(self, abnormality):
        """The group of an abnormality, or None when the vocabulary lacks it."""
        return self._group_of.get(abnormality)

    def groups_of(self, organ):
        """The groups an organ belongs to (empty for an organ outside every group)."""
        return tuple(self._organ_groups.get(organ, ()))

    def organ_group(self, organ):
        """The first group of an organ, or None (the default vocabulary has one per organ)."""
        groups = self._organ_groups.get(organ)
        return groups[0] if groups else None

    def abnormalities_of(self, organ):
        """The abnormalities that an organ can have: those of all its groups."""
        return tuple(a for g in self.groups_of(organ) for a in self.abnormalities[g])

    def unit_group(self, organ, abnormality):
        """The group that an (organ, abnormality) score counts under in metrics: the group of
        the abnormality when the organ belongs to it, else the organ's first group, else the
        organ itself (custom prompts for organs outside the vocabulary)."""
        group = self._group_of.get(abnormality)
        if group is not None and organ in self.groups[group]:
            return group
        return self.organ_group(organ) or organ

    def order(self):
        """``{(group, abnormality): index}`` for sorting tables and metric keys."""
        return {(g, a): i for i, (g, a) in enumerate(
            (g, a) for g, names in self.abnormalities.items() for a in names)}

    def check_organs(self, organ_vocab, what='the organ vocabulary'):
        """The groups without any organ in ``organ_vocab`` (their abnormalities are never
        scored); ConfigError when no group has one.

        Returns:
            list[str]: the groups left without organs (for a warning).
        """
        known = set(organ_vocab)
        empty = [g for g, organs in self.groups.items() if not known & set(organs)]
        if len(empty) == len(self.groups):
            raise ConfigError(
                f'abnormality vocabulary {self.name!r}: no group has an organ in {what} (the '
                f'groups list {sorted(self.organs)[:4]}, ...). Fix: use an organ vocabulary of '
                'the label scheme the vocabulary is written for (totalseg_v1 / totalseg_v2), or '
                'add its organ names to the groups.')
        return empty

    # -- coverage of the text resources ------------------------------------------------------
    def coverage_problems(self, table, complete=True):
        """What a ``{group: {abnormality: ...}}`` table lacks or has beyond this vocabulary.

        Args:
            table (Mapping): a prompt file's ``abnormalities`` or a dictionary.
            complete (bool): also report the vocabulary's abnormalities the table lacks;
                False checks only that the table names nothing outside the vocabulary's groups
                (a hand-made partial dictionary for a loss built on its own).

        Returns:
            list[str]: ``missing group/abnormality`` and ``unknown ...`` items (empty if the
            table covers the vocabulary exactly).
        """
        problems = []
        missing = [f'{g}/{a}' for g, names in self.abnormalities.items() for a in names
                   if a not in (table.get(g) or {})]
        if missing and complete:
            problems.append('missing ' + ', '.join(missing))
        unknown_groups = [g for g in table if g not in self.groups]
        if unknown_groups:
            problems.append(f'groups not in the vocabulary {unknown_groups}')
        extra = [f'{g}/{a}' for g in table if g in self.groups for a in (table[g] or {})
                 if a not in self.abnormalities[g]]
        if extra and complete:
            problems.append('abnormalities not in the vocabulary ' + ', '.join(extra))
        return problems

    def check_covers(self, table, what, path, complete=True):
        """Raise a one-line ConfigError naming what a prompt or dictionary table lacks (see
        :meth:`coverage_problems`)."""
        problems = self.coverage_problems(table, complete)
        if problems:
            raise ConfigError(
                f'{what} {path} does not cover abnormality vocabulary {self.name!r} '
                f'({self.source}): {"; ".join(problems)}. Fix: add the entries (the keys are '
                f'the groups {list(self.groups)} and their abnormalities), or pick the file '
                'written for this vocabulary.')

    def to_dict(self):
        """The vocabulary as the JSON object it was read from (without resource paths)."""
        groups = {}
        for g in self.groups:
            groups[g] = dict(organs=list(self.groups[g]), abnormalities=list(self.abnormalities[g]))
            if g in self.notes:
                groups[g]['note'] = self.notes[g]
        out = dict(name=self.name, groups=groups)
        if self.label_columns:
            out['label_columns'] = dict(self.label_columns)
        return out

    def __repr__(self):
        return (f'AbnormalityVocabulary({self.name!r}: {len(self.names)} abnormalities in '
                f'{len(self.groups)} groups)')

    def __eq__(self, other):
        return isinstance(other, AbnormalityVocabulary) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))


def _resource(value, base, where, field):
    """Resolve a resource path of a vocabulary: absolute, next to the file, or shipped."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f'{where}: "{field}" must be a file path, got {value!r}.')
    candidates = [value] if osp.isabs(value) else [osp.join(base, value),
                                                   osp.join(RESOURCES_DIR, value)]
    for candidate in candidates:
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    raise ConfigError(f'{where}: "{field}" file {value!r} is found neither next to the '
                      f'vocabulary ({base}) nor in {RESOURCES_DIR}. Fix: correct the path.')


def _from_object(raw, source, base):
    where = f'abnormality vocabulary ({source})'
    if not isinstance(raw, dict):
        raise ConfigError(f'{where} must be a JSON object with "groups" (format in '
                          'docs/vocabularies.md).')
    name = raw.get('name') or (osp.splitext(osp.basename(source))[0]
                               if source != 'config' else 'custom')
    where = f'abnormality vocabulary {name!r} ({source})'
    if 'groups' not in raw:
        raise ConfigError(f'{where} has no "groups" field (format in docs/vocabularies.md).')
    return AbnormalityVocabulary(
        raw['groups'], name=name,
        prompts=_resource(raw.get('prompts'), base, where, 'prompts'),
        dictionary=_resource(raw.get('dictionary'), base, where, 'dictionary'),
        label_columns=raw.get('label_columns'), source=source)


@lru_cache(maxsize=None)
def _from_file(path):
    try:
        with open(path, encoding='utf-8') as f:
            raw = json.load(f)
    except ValueError as e:
        raise ConfigError(f'abnormality vocabulary {path} is not valid JSON: {e}') from None
    return _from_object(raw, path, osp.dirname(path))


def load_abnormality_vocab(spec=None):
    """Load an abnormality vocabulary.

    Args:
        spec: None or ``'default'`` (the shipped 16-finding vocabulary), the name of another
            shipped vocabulary (``'ct_rate'``), the path of a JSON file, the JSON object itself
            as a dict, or an :class:`AbnormalityVocabulary` (returned as it is).

    Returns:
        AbnormalityVocabulary

    Raises:
        ConfigError: an unknown name, a missing file or a malformed vocabulary (one line that
            names the file and the field).
    """
    if spec is None:
        spec = DEFAULT_NAME
    if isinstance(spec, AbnormalityVocabulary):
        return spec
    if isinstance(spec, dict):
        return _from_object(dict(spec), 'config', os.getcwd())
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f'abnormality_vocab must be a name ({", ".join(shipped_vocabularies())})'
                          f', a JSON path or a dict, got {type(spec).__name__}.')
    spec = str(spec)
    if _NAME.match(spec):
        path = osp.join(VOCABULARY_DIR, f'{spec}.json')
        if not osp.isfile(path):
            raise ConfigError(f'abnormality_vocab={spec!r} is not a shipped vocabulary; use one '
                              f'of {", ".join(shipped_vocabularies())} or the path of a JSON '
                              'file (format in docs/vocabularies.md).')
        return _from_file(path)
    if not osp.isfile(spec):
        raise ConfigError(f'abnormality vocabulary file {spec} does not exist. Fix: give a '
                          f'shipped name ({", ".join(shipped_vocabularies())}) or an existing '
                          'JSON file.')
    return _from_file(osp.abspath(spec))


def default_vocabulary():
    """The shipped default vocabulary (16 abnormalities in 7 organ groups, DESIGN.md)."""
    return load_abnormality_vocab(DEFAULT_NAME)
