"""Execute notebooks in place and keep their outputs, so the docs site shows what a reader sees in Jupyter.

    python tools/execute.py                      # every notebook, slow cells skipped (their saved outputs are kept)
    python tools/execute.py nbs/08_explain.ipynb  # some notebooks
    python tools/execute.py --slow nbs/tutorials/sentiment.ipynb   # slow cells too (a tutorial's point)

Cells are run the way `nbdev_test` runs them (from the notebook's folder, `#| eval: false` and export cells skipped),
each executed cell's outputs replaced, and the seconds each cell took written to `--times` (JSON) for finding the slow
ones. Notebooks run in parallel, each in a fresh process.
"""
import argparse, json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _skip(cell, flags):
    from nbdev.process import extract_directives
    if cell.cell_type != 'code': return True
    if 'nbdev_export' + '(' in cell.source: return True
    d = extract_directives(cell, remove=False)
    if d.get('eval:', [''])[0].lower() == 'false': return True
    return bool(flags & d.keys())


def execute(path, slow=False):
    "Run `path` and write it back with its outputs; returns (path, ok, seconds, [(cell index, seconds)])."
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    os.environ.setdefault('MPLBACKEND', 'Agg')
    path = Path(path).resolve()
    nb, flags, times = read_nb(path), (set() if slow else {'slow'}), []
    shell, start, clock = CaptureShell(path), time.time(), {}
    shell._fname = path
    def pre(cell):
        if _skip(cell, flags): return True
        cell.outputs, clock['t'] = [], time.time()
    def post(cell): times.append((cell.idx_, round(time.time() - clock['t'], 1)))
    try:
        with working_directory(path.parent): shell.run_all(nb, exc_stop=True, preproc=pre, postproc=post)
    except Exception:
        sys.stderr.write(shell.prettytb(fname=path) + '\n')
        return str(path.relative_to(ROOT)), False, round(time.time() - start, 1), times
    write_nb(nb, path)
    return str(path.relative_to(ROOT)), True, round(time.time() - start, 1), times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to run (default: every notebook under nbs/)')
    p.add_argument('--slow', action='store_true', help='run `#| slow` cells too')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--times', default=None, help='write seconds per cell to this JSON file')
    a = p.parse_args(argv)
    nbs = [Path(n) for n in a.notebooks] or sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb')
                                                    if not any(s.startswith(('.', '_')) for s in p.parts))
    results = []
    with ProcessPoolExecutor(a.workers, max_tasks_per_child=1) as ex:   # a fresh process per notebook
        for name, ok, secs, times in ex.map(execute, nbs, [a.slow] * len(nbs)):
            print(f"{'ok  ' if ok else 'FAIL'} {secs:7.1f} s  {name}", flush=True)
            results.append(dict(notebook=name, ok=ok, seconds=secs, cells=times))
    if a.times: Path(a.times).write_text(json.dumps(results, indent=1))
    return 0 if all(r['ok'] for r in results) else 1


if __name__ == '__main__': sys.exit(main())
