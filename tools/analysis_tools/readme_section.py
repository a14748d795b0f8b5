"""Replace a marked section of README.md with a benchmark's Markdown output.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; the benchmark
scripts call ``update_readme(name, markdown)`` when run with ``--update-readme``, so the
tables in the README always come from the script that made them.
"""
import os.path as osp
import re

README = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'README.md')


def update_readme(name, markdown, readme=README):
    with open(readme) as f:
        text = f.read()
    start, end = f'<!-- {name}:start -->', f'<!-- {name}:end -->'
    block = f'{start}\n{markdown.strip()}\n{end}'
    pattern = re.compile(re.escape(start) + r'.*?' + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f'README.md has no section {start} ... {end}; add the markers first.')
    with open(readme, 'w') as f:
        f.write(pattern.sub(lambda _: block, text))
    print(f'updated README section {name!r}')
