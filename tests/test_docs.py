"""README.md and docs/*.md: short README, links that resolve, no word on how the project was made.

Plain text checks (no torch, no OpenMMLab imports), so they run in well under a second.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / 'README.md'
PAGES = [README] + sorted((ROOT / 'docs').glob('*.md'))
MAX_README_LINES = 250

FENCED_CODE = re.compile(r'^(```|~~~).*?^\1', re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r'`[^`\n]*`')
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
EXTERNAL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')  # http:, https:, mailto:, ...
MAKING = re.compile(r'\b(session|sessions|lent)\b', re.IGNORECASE)


def prose(path: Path) -> str:
    """The page without its code blocks and inline code: where links live."""
    return INLINE_CODE.sub('', FENCED_CODE.sub('', path.read_text(encoding='utf-8')))


def relative_links(path: Path):
    for target in LINK.findall(prose(path)):
        if EXTERNAL.match(target) or target.startswith('#'):
            continue
        yield target


def test_readme_is_short():
    lines = README.read_text(encoding='utf-8').splitlines()
    assert len(lines) <= MAX_README_LINES, f'README.md has {len(lines)} lines'


def test_readme_keeps_its_two_commands():
    text = README.read_text(encoding='utf-8')
    assert 'make demo' in text and 'make test' in text


def anchors(path: Path) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCED_CODE.sub('', path.read_text(encoding='utf-8'))
    return {re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
            for heading in re.findall(r'^#{1,6}\s+(.+?)\s*#*$', text, re.MULTILINE)}


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition('#')
        linked = (page.parent / file_part).resolve()
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == '.md' and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f'{page.relative_to(ROOT)}: links to missing files or headings: {broken}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_in_page_anchors_resolve(page):
    missing = [target for target in LINK.findall(prose(page))
               if target.startswith('#') and target[1:] not in anchors(page)]
    assert not missing, f'{page.relative_to(ROOT)}: no heading for {missing}'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_word_on_how_the_project_was_made(page):
    hits = [f'{number}: {line.strip()}'
            for number, line in enumerate(page.read_text(encoding='utf-8').splitlines(), 1)
            if MAKING.search(line)]
    assert not hits, f'{page.relative_to(ROOT)}:\n' + '\n'.join(hits)


def test_the_link_finder_sees_links():
    """The checks above would pass vacuously if the pattern found nothing."""
    targets = list(relative_links(README))
    assert 'docs/recipes.md' in targets and len(targets) >= 5
