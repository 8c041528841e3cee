"The workflow from the command line: plans refused before any work, runs that redo only what changed, the deploy gate, rollback, kill -9 and resume, a failing step (the search and the Ray engine: test_engines.py)"
import json, os, re, random, signal, sqlite3, subprocess, time, shutil
from pathlib import Path
import pytest
from conftest import run_cli, AGENTFLOW, write_plan, steps_run
from agentflow.data import crowdflower_files

PLAN = """\
defaults: {task: classify, epochs: 2, lr: 2.0e-3, max_length: 64, patience: 5, max_train: 200}
resources: {threads: 2, memory_gb: 8}
gate: {tolerance: 0.05}
skills:
  airline: {train: airline-train.jsonl, test: airline-test.jsonl, steps: [train, evaluate, deploy]}
  coachella: {train: coachella-train.jsonl, test: coachella-test.jsonl, steps: [train, evaluate, deploy]}
agent: {router: centroid}
"""

@pytest.mark.parametrize('text,needle', [
    ("skills:\n  airline: {train: airline-train.jsonl, task: classify, epoch: 3}\n", "plan.yaml:2: skills.airline.epoch: unknown key"),
    ("skills:\n  airline:\n    train: airline-train.jsonl\n    after: [coachella]\n    steps: [train]\n  coachella:\n    train: coachella-train.jsonl\n    after: [airline]\n    steps: [train]\n",
     "plan.yaml:4: skills.airline.after: a cycle: airline -> coachella -> airline"),
    ("skills:\n  airline:\n    train: nowhere.jsonl\n", "plan.yaml:3: skills.airline.train: no file "),
    ("skills:\n  airline:\n    train: airline-train.jsonl\n    test: airline-test.jsonl\n    resources: {threads: 4096}\n",
     "plan.yaml:5: skills.airline.resources.threads: needs 4096 threads, the machine has "),
    ("skills:\n  airline:\n    train: airline-train.jsonl\n    test: airline-test.jsonl\n    task: classify\n    lr: -1\n",
     "plan.yaml:6: skills.airline.lr: must be positive"),
    # a plan that would replace its own folder, an alias bomb (the rest of what a plan may not do: the workflow chapter)
    (PLAN.replace("agent: {router: centroid}", "agent: {router: centroid, out: .}"), "plan.yaml:7: agent.out: "),
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                                                 for p, c in zip('abcdefgh', 'bcdefghi')) + PLAN, "plan.yaml:1: YAML anchors and aliases"),
])
def test_bad_plan_is_refused_before_any_work(domains, tmp_path, text, needle):
    for f in domains.iterdir(): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, text)
    r = run_cli('run', plan)
    assert r.returncode == 2 and r.stdout == ''
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path/'plan.agentflow').exists()      # nothing was started
    assert plan.read_text() == text and (tmp_path/'airline-train.jsonl').exists()   # nothing was replaced

def test_bad_state_file_is_one_line(domains, tmp_path):
    for f in domains.glob('airline*'): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, "skills:\n  airline: {train: airline-train.jsonl, task: classify, steps: [train]}\n")
    (tmp_path/'plan.agentflow'/'state.db').mkdir(parents=True)           # a folder where the state file goes
    r = run_cli('status', plan)                                          # `run` opens it the same way (the chapter tests both)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0, r.stderr
    assert 'state.db: a folder, not a file; move it aside and run again' in r.stderr

def test_run_redoes_only_what_changed_gates_and_rolls_back(domains, tmp_path):
    for f in domains.iterdir(): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, PLAN)
    work = tmp_path/'plan.agentflow'
    r = run_cli('run', plan)
    assert r.returncode == 0, r.stderr
    assert steps_run(r.stderr) == {'train:airline', 'evaluate:airline', 'train:coachella', 'evaluate:coachella', 'agent'}
    assert os.readlink(work/'skills'/'airline'/'current') == 'v1' and (work/'agent'/'agent.json').exists()
    # nothing changed: nothing runs, twice, on a schedule
    r = run_cli('run', plan, '--every', '1s', '--runs', '2')
    assert r.returncode == 0 and steps_run(r.stderr) == set(), r.stderr
    assert r.stderr.count('up to date') >= 14
    # new data for one domain: only its steps and the agent run
    crowdflower_files(tmp_path, 'coachella', n_train=440, n_test=120)
    write_plan(tmp_path, PLAN.replace('tolerance: 0.05', 'tolerance: 1.0'))     # this time any new version goes live
    r = run_cli('status', plan, '--json')
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert [v['version'] for v in status['versions']] == ['v1', 'v1'] and status['trials'] == []
    rows = {row['step']: row for row in status['steps']}
    assert rows['train:coachella']['next'] == 'would run (inputs changed)' and rows['train:airline']['next'] == 'up to date'
    r = run_cli('run', plan)
    assert r.returncode == 0, r.stderr
    assert steps_run(r.stderr) == {'train:coachella', 'evaluate:coachella', 'agent'}
    assert 'deployed v2 (was v1)' in r.stderr
    # a much worse version (an untrained head) is refused by the gate and nothing live changes
    write_plan(tmp_path, PLAN.replace("airline: {train", "airline: {peft: none, train_layers: head, lr: 1.0e-7, epochs: 1, train"))
    r = run_cli('run', plan, '--strict')                         # for CI: a refused deploy fails the job
    assert r.returncode == 3 and 'agentflow: --strict: the gate refused deploy:airline' in r.stderr, r.stderr
    assert re.search(r'deploy:airline +refused: macro_f1 [0-9.]+ is below the live v1', r.stderr), r.stderr
    assert steps_run(r.stderr) == {'train:airline', 'evaluate:airline'}     # coachella's v2 is not evaluated again after its deploy
    assert os.readlink(work/'skills'/'airline'/'current') == 'v1' and os.readlink(work/'skills'/'coachella'/'current') == 'v2'
    r = run_cli('status', plan)
    assert 'refused' in r.stdout and ' live ' in r.stdout
    # roll back: the version before is live again, the agent is rebuilt with it
    write_plan(tmp_path, PLAN.replace('tolerance: 0.05', 'tolerance: 1.0'))
    r = run_cli('rollback', plan, 'coachella')
    assert r.returncode == 0 and 'coachella: v1 is live' in r.stdout, r.stderr
    assert os.readlink(work/'skills'/'coachella'/'current') == 'v1'
    assert 'running plan.yaml again so that its agent takes v1' in r.stderr
    assert 'v2 was rolled back' in r.stderr                      # the plan's run after it did not deploy v2 again
    # airline's settings went back, so it trains again; coachella's evaluation of v2 against v1 still holds
    assert steps_run(r.stderr) == {'train:airline', 'evaluate:airline', 'agent'}
    assert 'already live as v1' in r.stderr
    adapter = 'adapter_model.safetensors'                        # the agent was rebuilt with v1
    assert (work/'agent'/'skills'/'coachella'/adapter).read_bytes() == (work/'skills'/'coachella'/'v1'/adapter).read_bytes()
    r = run_cli('run', plan)
    assert r.returncode == 0 and steps_run(r.stderr) == set(), r.stderr
    assert os.readlink(work/'skills'/'coachella'/'current') == 'v1'
    r = run_cli('rollback', plan, 'airline')
    assert r.returncode == 2 and 'v1 is its first version: nothing to roll back to' in r.stderr

def _checkpoint(work:Path):
    "The identity of the train step's last epoch checkpoint (a new one is written by rename), or None"
    files = list(work.rglob('last.safetensors')) if work.exists() else []
    return tuple((f.stat().st_ino, f.stat().st_mtime_ns) for f in files if f.exists()) or None

def _procs_of(d:Path) -> list[str]:
    "The command lines of the processes that name folder `d` (from /proc: `ps` cuts long lines short)"
    found = []
    for proc in Path('/proc').iterdir():
        try: args = (proc/'cmdline').read_bytes().decode(errors='replace').split('\0')
        except OSError: continue
        if any(str(d) in a for a in args): found.append(' '.join(args))
    return found

def _step_running(d:Path) -> bool: return any('step_main' in a for a in _procs_of(d))

def test_resume_after_kill_equals_an_uninterrupted_run(domains, tmp_path):
    plan_text = ("defaults: {task: classify, epochs: 3, lr: 2.0e-3, max_length: 64, patience: 5, max_train: 120}\n"
                 "skills:\n  airline: {train: airline-train.jsonl, test: airline-test.jsonl, steps: [train, evaluate, deploy]}\n")
    results = {}
    for name in ('straight', 'killed'):
        d = tmp_path/name; d.mkdir()
        for f in domains.glob('airline*'): shutil.copy(f, d)
        plan = write_plan(d, plan_text)
        if name == 'killed':
            # kill -9 at moments tied to the run's progress, not to the clock (a busy machine moves the clock's moments):
            # once while the first attempt's step is starting or training, then each time soon after a new epoch's checkpoint
            rng, kills, work = random.Random(0), 0, d/'plan.agentflow'
            for attempt in range(3):
                before = _checkpoint(work)
                p = subprocess.Popen([AGENTFLOW, 'run', str(plan)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                while p.poll() is None and not (_step_running(d) if attempt == 0 else _checkpoint(work) not in (before, None)):
                    time.sleep(0.1)
                time.sleep(rng.uniform(1, 4) if attempt == 0 else rng.uniform(0, 0.5))
                if p.poll() is None: p.send_signal(signal.SIGKILL); kills += 1
                p.communicate()
                time.sleep(1)
                assert not _procs_of(d), f"a step outlived its run: {_procs_of(d)}"
            assert kills == 3
        r = run_cli('run', plan)
        assert r.returncode == 0, r.stderr
        if name == 'killed':
            con = sqlite3.connect(d/'plan.agentflow'/'state.db')
            assert con.execute("select count(*) from attempts where state='interrupted'").fetchone()[0] >= 1
            assert 'resumed from' in ''.join(f.read_text() for f in (d/'plan.agentflow'/'attempts').glob('train-*.log'))
        v1 = d/'plan.agentflow'/'skills'/'airline'/'v1'
        results[name] = (json.loads((v1/'metrics.json').read_text()), (v1/'adapter_model.safetensors').read_bytes())
        assert not list((d/'plan.agentflow').rglob('*.tmp'))     # nothing half-written is left
    (ms, ws), (mk, wk) = results['straight'], results['killed']
    assert ms['test'] == mk['test'] and ms['valid'] == mk['valid'] and ws == wk

def test_a_failing_step_fails_alone(domains, tmp_path):
    for f in domains.iterdir(): shutil.copy(f, tmp_path)
    (tmp_path/'broken-train.jsonl').write_text('{"text": "fine", "label": "positive"}\n{"text": "no label here"}\n')
    plan = write_plan(tmp_path, PLAN.replace("agent: {router: centroid}\n", "").replace("  coachella:", "  broken: {train: broken-train.jsonl, test: airline-test.jsonl, steps: [train, evaluate, deploy]}\n  #"))
    r = run_cli('run', plan)
    assert r.returncode == 1, r.stderr
    assert 'train:broken' in r.stderr and 'failed: exit 2: error: ' in r.stderr and 'broken-train.jsonl:2' in r.stderr
    assert re.search(r'evaluate:broken +blocked', r.stderr)
    assert "1 step failed: train:broken (their logs are named above)" in r.stderr
    assert os.readlink(tmp_path/'plan.agentflow'/'skills'/'airline'/'current') == 'v1'

def test_killed_step_is_reported_with_its_signal(domains, tmp_path):
    for f in domains.glob('airline*'): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, "skills:\n  airline: {train: airline-train.jsonl, test: airline-test.jsonl, task: classify, steps: [train]}\n")
    p = subprocess.Popen([AGENTFLOW, 'run', str(plan)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid, t0 = None, time.time()
    while pid is None and time.time() - t0 < 120:
        time.sleep(0.5)
        for proc in Path('/proc').iterdir():
            try: args = (proc/'cmdline').read_bytes().split(b'\0')
            except OSError: continue
            if any(b'step_main' in a for a in args) and any(str(tmp_path).encode() in a for a in args): pid = int(proc.name)
    assert pid, "the step's process never started"
    r = run_cli('run', plan)                               # a second run of the same plan meanwhile is refused at once
    assert r.returncode == 2 and 'already running' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    os.kill(pid, signal.SIGKILL)                           # what the kernel's out-of-memory killer does
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1
    assert re.search(r'train:airline +failed: killed by signal 9 \(SIGKILL, out of memory\?\); log ', err), err
