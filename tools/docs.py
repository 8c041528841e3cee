"""Build the docs site offline: nbdev processes the notebooks, Sphinx with MyST-NB renders them into `_docs/`.

    python tools/docs.py           # build into _docs/; open _docs/index.html in a browser
    python tools/docs.py --serve   # build, then serve it on http://localhost:8000

The same sources build with Quarto where it is installed (`nbdev_docs`, `nbdev_preview`): both read the sidebar
order, the title and `styles.css` from the top-level `_quarto.yml`. nbdev's own processing does the notebook work
(hidden cells dropped, `show_doc` run and rendered, names linked to their pages); this script only translates what
Quarto would read (front matter, `#|` display directives, page names) for Sphinx. Nothing on the built pages is
fetched from the network: no CDN scripts, fonts or math renderers.
"""
import argparse, copy, html, json, posixpath, re, shutil, subprocess, sys, time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / 'build' / 'docs'          # Sphinx's sources and caches (git-ignored)


def process_notebooks(workers=2, force=False):
    "nbdev's processing of every notebook into `_proc/` (cached: only changed notebooks are processed again)."
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    import nbdev.doclinks
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    return Path(proc_nbs(cfg.nbs_path, n_workers=workers, force=force)), cfg


def sidebar(quarto, proc, nbs):
    "The pages in `_quarto.yml`'s sidebar order, as [(section caption or None, [notebook paths under `proc`])]."
    def expand(entry):                         # matched in nbs/, so a deleted notebook's stale `_proc` copy is no page
        if any(ch in entry for ch in '*?['):
            found = sorted(p for p in nbs.glob(entry) if p.is_file() and not p.name.startswith(('_', '.')))
        else: found = [nbs / entry]
        return [proc / p.relative_to(nbs) for p in found]
    out = []
    for item in quarto['website']['sidebar']['contents']:
        if isinstance(item, str): out.append((None, expand(item)))
        else:
            items = item['contents'] if isinstance(item['contents'], list) else [item['contents']]
            out.append((item['section'], [p for e in items for p in expand(e)]))
    return out


def _page(nb, rel):
    "The page notebook `nb` (at `rel` under `_proc/`) becomes: its front matter's `output-file`, in its folder"
    name = _front_matter(nb).get('output-file') or Path(rel).with_suffix('.html').name
    return (Path(rel).parent / name).with_suffix('').as_posix()


def _front_matter(nb):
    for c in nb['cells']:
        if c['cell_type'] == 'raw':
            src = ''.join(c['source']).strip()
            if src.startswith('---'): return yaml.safe_load(src.strip('-')) or {}
    return {}


_ENTRY = re.compile(r'^#{2,4}\s+(\S+?)\s*$', re.M)           # a show_doc entry's heading: `### Learner.fit`
_DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+):?\s*(.*)$')
_LINK = re.compile(r'\[([^\]]*)\]\(((?:https?://[^)\s]+)|(?:[^):\s]+\.ipynb(?:#[^)\s]*)?))\)(\{[^}]*\})?')


def _slug(anchor):
    from docutils.nodes import make_id
    return make_id(anchor)


def headings(nb):
    "The anchors of a notebook's API entries (`api-` + the name's slug): the targets of links to a name"
    out = set()
    for c in nb['cells']:
        for o in c.get('outputs', []):
            md = ''.join(o.get('data', {}).get('text/markdown', ''))
            out |= {'api-' + _slug(h) for h in _ENTRY.findall(md)}
    return out


class Translator:
    "Rewrites one processed notebook into what MyST-NB reads, with doc links and notebook links made relative."
    def __init__(self, cfg, page, nb_dir='', pages=None, anchors=None):
        self.site = f"{cfg.doc_host.rstrip('/')}{cfg.doc_baseurl.rstrip('/')}/"
        self.up = '../' * page.count('/')
        self.nb_dir, self.pages, self.anchors = nb_dir, pages or {}, anchors or {}

    def _anchor(self, page, anchor):
        "The API entry of `anchor` on `page`; else its class's (`Skill.new` -> `Skill`); else the page's top"
        known = self.anchors.get(page, set())
        for a in (anchor, anchor.rsplit('.', 1)[0]):
            if 'api-' + _slug(a) in known: return f'#api-{_slug(a)}'
        print(f'docs: {page} has no entry for {anchor}: linked to the page', file=sys.stderr)
        return ''

    def link(self, m):
        text, url, _attrs = m.group(1), m.group(2), m.group(3)
        if url.startswith(self.site):                       # nbdev's links to a name's page
            path, _, anchor = url[len(self.site):].partition('#')
            url = self.up + path + (self._anchor(path.removesuffix('.html'), anchor) if anchor else '')
        else:                                               # a link to another notebook: that notebook's page
            path, _, anchor = url.partition('#')
            nb = posixpath.normpath(posixpath.join(self.nb_dir, path))
            if nb in self.pages: url = self.up + self.pages[nb] + '.html' + (f'#{_slug(anchor)}' if anchor else '')
        text = html.escape(text, quote=False)
        text = re.sub(r'`([^`]+)`', r'<code>\1</code>', text)
        return f'<a href="{html.escape(url)}">{text}</a>'

    def markdown(self, src):
        src = re.sub(r'<!-- WARNING: THIS FILE WAS AUTOGENERATED!.*?-->\s*', '', src)
        parts = re.split(r'(^(?:```|~~~).*?^(?:```|~~~))', src, flags=re.M | re.S)   # fenced code keeps names, not links
        plain = lambda t: _LINK.sub(lambda m: m.group(1), t)
        return ''.join(plain(p) if p.startswith(('```', '~~~')) else self._prose(p) for p in parts)

    def _prose(self, p):
        "Links in text become relative `<a>`; in a heading, only their text stays (a heading is a link already)"
        p = re.sub(r'^#{1,6} .*$', lambda h: _LINK.sub(lambda m: m.group(1), h.group(0)), p, flags=re.M)
        return _LINK.sub(self.link, p)

    def entry(self, doc):
        "A `show_doc` entry: an `api-` anchor, the heading, then its source link floated right (Quarto's layout)"
        doc = re.sub(r'^\s*---\s*\n', '', doc)                 # Quarto's rule above each entry: Sphinx refuses it first
        src = re.search(r'^\[source\]\((\S+?)\)(\{[^}]*\})?\s*\n', doc, re.M)
        if src: doc = doc[:src.start()] + doc[src.end():]
        head = _ENTRY.search(doc)
        if head:
            link = f'\n\n<a class="sourcelink" href="{html.escape(src.group(1))}" target="_blank">source</a>' if src else ''
            doc = (doc[:head.start()] + f'<span id="api-{_slug(head.group(1))}"></span>\n\n' + head.group(0) + link
                   + doc[head.end():])
        return self.markdown(doc)

    def notebook(self, nb):
        nb, cells = copy.deepcopy(nb), []
        for c in nb['cells']:
            src = ''.join(c['source'])
            if c['cell_type'] == 'raw':
                fm = yaml.safe_load(src.strip().strip('-')) if src.strip().startswith('---') else None
                if fm:
                    head = f"# {fm.get('title', '')}\n"
                    if fm.get('description'):
                        desc = re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(fm['description'], quote=False))
                        head += f'\n<p class="description">{desc}</p>\n'
                    cells.append(dict(cell_type='markdown', metadata={}, source=head))
                continue
            if c['cell_type'] == 'markdown':
                c['source'] = self.markdown(src)
                cells.append(c); continue
            lines, d = src.splitlines(), {}
            while lines and (m := _DIRECTIVE.match(lines[0])):
                d[m.group(1)] = m.group(2).strip().lower(); lines.pop(0)
            if d.get('include') == 'false': continue
            outs = c.get('outputs', [])
            md = [o['data']['text/markdown'] for o in outs if 'text/markdown' in o.get('data', {})]
            if md and d.get('output') == 'asis':           # show_doc: its markdown becomes the page's own text
                cells.append(dict(cell_type='markdown', metadata={}, source=self.entry(''.join(md[0])))); continue
            tags = []
            if d.get('echo') == 'false': tags.append('remove-input')
            if d.get('output') == 'false': tags.append('remove-output')
            c['source'] = '\n'.join(lines)
            c['metadata'] = {'tags': tags} if tags else {}
            for o in outs:
                data = o.get('data', {})
                if data.pop('application/vnd.jupyter.widget-view+json', None):   # widgets need a live kernel
                    o['data'] = {'text/html': '<p class="widget-note">An interactive widget: it runs in Jupyter.</p>'}
                if 'text/markdown' in data: data['text/markdown'] = self.markdown(''.join(data['text/markdown']))
            if not c['source'].strip() and not outs: continue
            cells.append(c)
        nb['cells'] = cells
        nb['metadata'] = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
                          'language_info': {'name': 'python'}}
        return nb


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2a6f97"/>'
           '<path d="M4 12 8 4l4 8" stroke="#fff" stroke-width="2" fill="none"/></svg>')

CONF = '''\
# Written by tools/docs.py on every build.
project = {title!r}
html_title = {title!r}
copyright = {copyright!r}
extensions = ['myst_nb']
html_math_renderer = 'mathml'   # formulas as MathML, drawn by the browser: no MathJax from a CDN
html_theme = 'furo'
html_static_path = ['_static']
html_css_files = ['styles.css']
html_favicon = '_static/favicon.svg'
html_show_sourcelink = False
html_copy_source = False
myst_enable_extensions = ['colon_fence', 'deflist', 'html_image', 'dollarmath', 'amsmath']
nb_execution_mode = 'off'        # the notebooks keep their outputs; the site shows them as saved
nb_ipywidgets_js = {{}}           # widget scripts come from a CDN: pages show the widgets' text instead
nb_merge_streams = True
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure']
exclude_patterns = ['_build']


def setup(app):
    from docutils import nodes
    from latex2mathml.converter import convert
    def inline(self, node):
        self.body.append(convert(node.astext())); raise nodes.SkipNode
    def block(self, node):
        self.body.append('<div class="math">' + convert(node.astext(), display='block') + '</div>'); raise nodes.SkipNode
    app.add_html_math_renderer('mathml', (inline, None), (block, None))
'''


def build(out=ROOT / '_docs', workers=2, quiet=True, force=False, strict=False):
    t0 = time.time()
    proc, cfg = process_notebooks(workers, force)
    quarto = yaml.safe_load((ROOT / '_quarto.yml').read_text())
    src = BUILD / 'src'
    shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
    (src / '_static').mkdir()
    shutil.copy(ROOT / 'styles.css', src / '_static' / 'styles.css')
    (src / '_static' / 'favicon.svg').write_text(FAVICON)
    toc, raw, names = [], {}, {}                  # raw: notebook (path under _proc/) -> its JSON; names: -> its page
    for caption, nbs in sidebar(quarto, proc, Path(cfg.nbs_path)):
        for p in nbs:
            rel = p.relative_to(proc).as_posix()
            raw[rel] = json.loads(p.read_text()); names[rel] = _page(raw[rel], rel)
        toc.append((caption, [names[p.relative_to(proc).as_posix()] for p in nbs]))
    anchors = {names[rel]: headings(nb) for rel, nb in raw.items()}
    pages = {names[rel]: Translator(cfg, names[rel], posixpath.dirname(rel), names, anchors).notebook(nb) for rel, nb in raw.items()}
    if 'index' not in pages: raise SystemExit('_quarto.yml: the sidebar must start with index.ipynb')
    tree = ''.join(f"\n```{{toctree}}\n:hidden:\n{f':caption: {cap}' + chr(10) if cap else ''}\n"
                   + '\n'.join(n for n in names if n != 'index') + '\n```\n'
                   for cap, names in toc if [n for n in names if n != 'index'])
    pages['index']['cells'].append(dict(cell_type='markdown', metadata={}, source=tree))
    for page, nb in pages.items():
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        (src / f'{page}.ipynb').write_text(json.dumps(nb, indent=1))
    web = quarto['website']
    (src / 'conf.py').write_text(CONF.format(title=web.get('title', cfg.lib_name), copyright=cfg.copyright))
    html_dir = BUILD / 'html'          # MyST-NB writes output images beside the Sphinx output folder: keep both in build/
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-j', str(workers), '-d', str(BUILD / 'doctrees'),
           str(src), str(html_dir)] + (['-q'] if quiet else []) + (['-W', '--keep-going'] if strict else [])
    shutil.rmtree(html_dir, ignore_errors=True)
    subprocess.run(cmd, check=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(html_dir, out)
    (out / '.nojekyll').touch()
    print(f'docs: {len(pages)} pages in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} '
          f'({time.time() - t0:.0f} s); open {out / "index.html"}')
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description='Build the docs site offline into _docs/ (Sphinx + MyST-NB over nbdev)')
    p.add_argument('--out', default=str(ROOT / '_docs'), help='output folder (default: _docs/)')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--serve', action='store_true', help='serve the built site on http://localhost:PORT')
    p.add_argument('--port', type=int, default=8000)
    p.add_argument('--verbose', action='store_true', help="show Sphinx's progress")
    p.add_argument('--force', action='store_true', help='process every notebook again (default: only changed ones)')
    p.add_argument('--strict', action='store_true', help="fail on any of Sphinx's warnings")
    a = p.parse_args(argv)
    out = build(Path(a.out).resolve(), a.workers, quiet=not a.verbose, force=a.force, strict=a.strict)
    if a.serve:
        import functools, http.server
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
        print(f'serving on http://localhost:{a.port}/ (Ctrl-C stops)')
        http.server.ThreadingHTTPServer(('localhost', a.port), handler).serve_forever()


if __name__ == '__main__': main()
