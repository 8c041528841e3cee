"""The docs site, built by the documented command (through `agentflow docs`) and read in a real browser (Debian's headless Chromium).

`python tools/docs.py` builds `_docs/`; a local HTTP server serves it; Chromium opens the index, a module page and a
tutorial and must see no console error, no failed request and no request leaving localhost. Every internal link and
image of every page must resolve (anchors included), and the search page must find `Learner`. Screenshots of the
three pages go to `build/screenshots/` for a person to look at.
"""
import functools, http.server, shutil, subprocess, threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE, SHOTS = ROOT / '_docs', ROOT / 'build' / 'screenshots'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
SITE_URL = 'https://agentflow.github.io/agentflow'     # settings.ini's doc_host + doc_baseurl: nbdev's links
# Chromium's own background traffic (updates, sync, lookups) would be refused on a closed network: switch it off
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']


class Refs(HTMLParser):
    "Links (and whether their text is code), images, scripts and stylesheets of one page, its ids and its prose"
    def __init__(self):
        super().__init__(); self.links, self.media, self.ids, self.text, self.code, self.a = [], [], set(), [], 0, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag in ('code', 'pre', 'script', 'style'): self.code += 1
        if tag == 'code' and self.a is not None: self.a[1] = True
        if tag == 'a' and a.get('href'): self.a = [a['href'], False]; self.links.append(self.a)
        if tag in ('img', 'script', 'source', 'iframe') and a.get('src'): self.media.append(a['src'])
        if tag == 'link' and a.get('href') and a.get('rel') and {'stylesheet', 'preload', 'icon'} & set(a['rel'].split()):
            self.media.append(a['href'])


    def handle_endtag(self, tag):
        if tag in ('code', 'pre', 'script', 'style'): self.code -= 1
        if tag == 'a': self.a = None
    def handle_data(self, data):
        if not self.code: self.text.append(data)


def parse(page):
    p = Refs(); p.feed(page.read_text(encoding='utf-8')); return p


@pytest.fixture(scope='module')
def site():
    # `agentflow docs` runs tools/docs.py, the README's command; --strict: any Sphinx warning fails
    subprocess.run([shutil.which('agentflow') or 'agentflow', 'docs', '--strict'], cwd=ROOT, check=True)
    return SITE


@pytest.fixture(scope='module')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(site))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()


def test_every_page_built(site):
    "The index, every chapter, tutorial and explanation of `_quarto.yml`'s sidebar is a page"
    nbs = [p for p in (ROOT / 'nbs').rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT).parts)]
    pages = {p.relative_to(site).as_posix() for p in site.rglob('*.html')}
    for sub in ('tutorials', 'explanations'):
        for nb in (ROOT / 'nbs' / sub).glob('*.ipynb'): assert f'{sub}/{nb.stem}.html' in pages, nb
    assert {'index.html', 'start.html', 'learner.html', 'explain.html', 'search.html'} <= pages
    assert len([p for p in pages if not p.startswith(('_', 'genindex', 'search'))]) == len(nbs)


def test_links_and_images_resolve(site):
    "Every internal link, anchor and image of every page resolves, and nothing is loaded from the network"
    ids, refs = {}, {}
    for page in site.rglob('*.html'):
        if '_static' in page.parts or '_sources' in page.parts: continue
        p = parse(page); ids[page.resolve()] = p.ids; refs[page] = p
    bad = []
    for page, p in refs.items():
        for src in p.media:
            u = urlsplit(src)
            if u.scheme in ('http', 'https') or src.startswith('//'): bad.append(f'{page.name}: loads {src} from the network')
            elif u.scheme != 'data' and not (page.parent / unquote(u.path)).exists(): bad.append(f'{page.name}: missing {src}')
        prose = ''.join(p.text)
        for leak in ('$$', '{target=', '\n:::', '#| ', 'agentflow.github.io/agentflow'):
            if leak in prose: bad.append(f'{page.name}: Quarto or LaTeX source left in the text: {leak!r}')
        for href, is_code in p.links:
            u = urlsplit(href)
            if '.ipynb' in u.path or href.startswith(SITE_URL): bad.append(f'{page.name}: untranslated link {href}'); continue
            if u.scheme or href.startswith('//'): continue        # a link out (source code, shap's docs) is not fetched
            if is_code and u.path and u.fragment and not u.fragment.startswith('api-'): bad.append(f'{page.name}: {href} is not an API entry')
            target = (page.parent / unquote(u.path)).resolve() if u.path else page.resolve()
            if target.is_dir(): target = target / 'index.html'
            if not target.exists(): bad.append(f'{page.name}: broken link {href}'); continue
            if u.fragment and target.suffix == '.html':
                if target not in ids: ids[target] = parse(target).ids
                if unquote(u.fragment) not in ids[target]: bad.append(f'{page.name}: no anchor {href}')
    assert not bad, '\n'.join(bad[:30])


def test_pages_in_chromium(server):
    "Four pages load in headless Chromium with no console error and no request leaving the machine; search finds Learner"
    if not Path(CHROMIUM).exists(): pytest.skip(f'no Chromium at {CHROMIUM} (Debian: apt-get install chromium)')
    sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is in the dev extra')
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for name in ('index', 'learner', 'explain', 'tutorials/conll2003_mistakes'):
                page, errors = browser.new_page(viewport={'width': 1280, 'height': 900}), []
                page.on('console', lambda m: m.type == 'error' and errors.append(f'console: {m.text}'))
                page.on('pageerror', lambda e: errors.append(f'page error: {e}'))
                page.on('requestfailed', lambda r: errors.append(f'failed: {r.url}'))
                page.on('response', lambda r: r.status >= 400 and errors.append(f'{r.status}: {r.url}'))
                page.on('request', lambda r: r.url.startswith(server) or r.url.startswith('data:')
                        or errors.append(f'left the machine: {r.url}'))
                resp = page.goto(f'{server}/{name}.html', wait_until='networkidle')
                assert resp.status == 200, name
                assert page.locator('h1').first.inner_text().strip(), name
                page.screenshot(path=str(SHOTS / f"{name.replace('/', '-')}.png"), full_page=True)
                assert not errors, f'{name}: ' + '; '.join(errors)
                page.close()
            page = browser.new_page()
            page.goto(f'{server}/search.html?q=Learner', wait_until='networkidle')
            page.wait_for_selector('#search-results ul.search li', timeout=30_000)
            hits = page.locator('#search-results ul.search li a').evaluate_all('els => els.map(e => e.getAttribute("href"))')
            assert any(h.split('#')[0].endswith('learner.html') for h in hits), hits
            page.screenshot(path=str(SHOTS / 'search.png'))
        finally: browser.close()


def test_one_quarto_config():
    "nbdev (and Quarto) read `nbs/_quarto.yml`: it is the top-level file, and everything that file names exists"
    import yaml
    top = ROOT / '_quarto.yml'
    assert (ROOT / 'nbs' / '_quarto.yml').resolve() == top.resolve()
    assert (ROOT / 'nbs' / 'styles.css').resolve() == (ROOT / 'styles.css').resolve()
    q = yaml.safe_load(top.read_text())
    assert (ROOT / 'nbs' / q['format']['html']['css']).exists()
    def entries(items):
        for it in items:
            if isinstance(it, str): yield it
            else: yield from entries(it['contents'] if isinstance(it['contents'], list) else [it['contents']])
    for e in entries(q['website']['sidebar']['contents']):
        assert list((ROOT / 'nbs').glob(e)), f'_quarto.yml names {e}, which matches no notebook'
