"""Write README.md from nbs/index.ipynb (what `nbdev_readme` does, without quarto); `--check` fails on drift."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path:Path) -> str:
    "Markdown cells as they are, visible code cells as python blocks; hidden cells and outputs left out"
    parts = ['<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->']
    for cell in json.loads(nb_path.read_text())['cells']:
        src = ''.join(cell['source']).strip()
        if not src: continue
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code' and not src.startswith('#| hide'):
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            parts.append('```python\n' + '\n'.join(lines) + '\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(root/'nbs'/'index.ipynb'), root/'README.md'
    if '--check' in sys.argv:
        if readme.read_text() != text:
            sys.exit("README.md differs from nbs/index.ipynb: run `python tools/readme.py` and commit README.md")
        print('README.md matches nbs/index.ipynb')
    else: readme.write_text(text)
