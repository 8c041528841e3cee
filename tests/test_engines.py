"The workflow's engines from the command line: a hyperparameter search (Optuna trials in parallel processes, resumed after kill -9) and the Ray engine on a local instance"
import json, os, random, re, signal, sqlite3, subprocess, time, shutil
import pytest
from conftest import run_cli, AGENTFLOW, write_plan, steps_run

def test_search_runs_trials_resumes_and_feeds_training(domains, tmp_path):
    for f in domains.glob('airline*'): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, (
        "defaults: {task: classify, max_length: 64, max_train: 200}\n"
        "resources: {threads: 2}\n"
        "skills:\n  airline:\n    train: airline-train.jsonl\n    test: airline-test.jsonl\n    steps: [train]\n"
        "    resources: {threads: 2}\n"
        "    search:\n      trials: 4\n      parallel: 2\n      params:\n        lr: {low: 5.0e-4, high: 3.0e-3, log: true}\n        epochs: [1, 2]\n"))
    p = subprocess.Popen([AGENTFLOW, 'run', str(plan)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path/'plan.agentflow'/'state.db'
    t0 = time.time()
    def finished():
        try: return sqlite3.connect(db).execute("select count(*) from trials where state in ('COMPLETE', 'PRUNED')").fetchone()[0]
        except sqlite3.Error: return 0
    while finished() < 1 and p.poll() is None and time.time() - t0 < 600: time.sleep(1)
    assert p.poll() is None, p.communicate()[1]
    p.send_signal(signal.SIGKILL); p.communicate()
    kept = finished()
    assert kept >= 1
    r = run_cli('run', plan)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    states = [s for (s,) in con.execute("select state from trials")]
    assert states.count('COMPLETE') + states.count('PRUNED') >= 4
    result = json.loads(con.execute("select result from attempts where step='search:airline' and state='done'").fetchone()[0])
    assert set(result['best']) == {'lr', 'epochs'} and len(result['trials']) == len(states)
    spec = json.loads(sorted((tmp_path/'plan.agentflow'/'attempts').glob('train-airline-*.spec.json'))[-1].read_text())
    assert {k: spec['config'][k] for k in result['best']} == result['best']
    assert 'Search for airline' in (tmp_path/'plan.agentflow'/'report.html').read_text()
    r = run_cli('status', plan)                             # every trial, not only the best in the step's note
    assert r.returncode == 0 and 'search trials of airline:' in r.stdout, r.stderr
    assert len(re.findall(r'^ *\d+ +(complete|pruned|fail) ', r.stdout, re.M)) == len(states), r.stdout

def test_ray_engine_runs_the_plan_on_a_local_instance(domains, tmp_path):
    ray = shutil.which('ray')
    if ray is None: pytest.skip("Ray is not installed (pip install ray)")
    for f in domains.glob('airline*'): shutil.copy(f, tmp_path)
    plan = write_plan(tmp_path, ("defaults: {task: classify, epochs: 1, max_length: 64, max_train: 200}\n"
                                 "resources: {threads: 2}\n"
                                 "skills:\n  airline: {train: airline-train.jsonl, test: airline-test.jsonl, steps: [search, train],\n"
                                 "            search: {trials: 2, parallel: 2, params: {lr: [1.0e-3, 3.0e-3]}}, resources: {threads: 2}}\n"))
    port = 6000 + random.Random().randrange(2000)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED='0')
    start = subprocess.run([ray, 'start', '--head', f'--port={port}', '--num-cpus=2', '--include-dashboard=false', '--disable-usage-stats'],
                           capture_output=True, text=True, env=env, timeout=300)
    assert start.returncode == 0, start.stderr
    try:
        r = run_cli('run', plan, '--engine', 'ray', env=dict(env, RAY_ADDRESS=f'127.0.0.1:{port}'))
        assert r.returncode == 0, r.stderr
        assert 'engine ray' in r.stderr and steps_run(r.stderr) == {'search:airline', 'train:airline'}
        log = r.stderr.splitlines()                           # handed to Ray: queued; its process running: started, timed from there
        for step in ('search:airline', 'train:airline'):
            q, s = (next(i for i, l in enumerate(log) if l.split()[:2] == [step, w]) for w in ('queued', 'started'))
            assert q < s and 'in the queue' in log[s], r.stderr
        con = sqlite3.connect(tmp_path/'plan.agentflow'/'state.db')
        search = json.loads(con.execute("select result from attempts where step='search:airline' and state='done'").fetchone()[0])
        workers = search['workers']          # the trials ran as Ray tasks of their own, side by side on the instance's 2 CPUs
        assert workers['engine'] == 'ray' and workers['codes'] == [0, 0] and len(set(workers['ray_tasks'])) == 2, workers
        assert len(search['trials']) == 2
        spec = json.loads(sorted((tmp_path/'plan.agentflow'/'attempts').glob('train-airline-*.spec.json'))[-1].read_text())
        assert spec['config']['lr'] == search['best']['lr']    # the training ran with the search's best setting
    finally: subprocess.run([ray, 'stop', '--force'], capture_output=True, env=env, timeout=120)
