"The agent and its server end to end, as a user runs them: skills trained by the CLI, an agent built, routed, served"
import csv, json, signal, socket, subprocess, threading, time, http.client
from pathlib import Path
import pytest
from agentflow.core import resolve_precision
from conftest import run_cli, AGENTFLOW

@pytest.fixture(scope='module')
def airline_skill(tmp_path_factory):
    "A sentiment skill on airline tweets, trained by the CLI from a CSV file whose columns are not the default ones"
    from agentflow.data import crowdflower_sentiment
    d = tmp_path_factory.mktemp('airline')
    dsd = crowdflower_sentiment(source='airline')
    for split, n in (('train', 300), ('test', 40)):
        with open(d/f'{split}.csv', 'w', newline='') as f:
            w = csv.writer(f); w.writerow(['sentence', 'sentiment'])
            for ex in dsd[split].select(range(n)): w.writerow([ex['text'], ex['label']])
    r = run_cli('train', '--task', 'classify', '--train', d/'train.csv', '--text-col', 'sentence', '--label-col', 'sentiment',
                '--epochs', 1, '--lr', 1e-3, '--out', d/'skill')
    assert r.returncode == 0, r.stderr
    return d/'skill'

@pytest.fixture(scope='module')
def agent_dir(ner_skill, airline_skill, tmp_path_factory):
    out = tmp_path_factory.mktemp('agents')/'two'
    r = run_cli('agent', 'build', out, '--skill', f'tweets={ner_skill}', '--skill', f'airline={airline_skill}')
    assert r.returncode == 0, r.stderr
    assert 'tweets' in r.stdout and 'airline' in r.stdout and 'centroid router' in r.stdout
    return out

def test_train_saves_router_texts(airline_skill):
    texts = json.loads((airline_skill/'texts.json').read_text())
    assert 250 <= len(texts) <= 300 and all(isinstance(t, str) and t for t in texts)

def test_skill_reads_later_files_as_it_was_trained(airline_skill):
    assert json.loads((airline_skill/'skill.json').read_text())['read'] == {'text_col': 'sentence', 'label_col': 'sentiment'}
    r = run_cli('evaluate', airline_skill, '--test', airline_skill.parent/'test.csv', '--json')   # no column flags: the skill's own
    assert r.returncode == 0, r.stderr
    assert 0 <= json.loads(r.stdout)['accuracy'] <= 1       # (a flag given still overrides: the CLI chapter's `_reader` test)

def test_agent_folder_is_standard(agent_dir):
    man = json.loads((agent_dir/'agent.json').read_text())
    assert [s['name'] for s in man['skills']] == ['tweets', 'airline'] and man['router'] == 'centroid'
    for name in ('tweets', 'airline'):
        assert {'skill.json', 'adapter_config.json', 'adapter_model.safetensors'} <= {p.name for p in (agent_dir/'skills'/name).iterdir()}
    r = run_cli('agent', 'show', agent_dir)
    assert r.returncode == 0 and 'airline' in r.stdout and 'lora' in r.stdout

def test_predict_routes_and_matches_each_skill(agent_dir, ner_skill, airline_skill):
    texts = ['@united my flight was delayed three hours and nobody helped', '@SouthwestAir thanks for the great service',
             'Justin Bieber and Selena Gomez in Toronto tonight', 'watching the new Star Wars movie with Kevin']
    r = run_cli('predict', agent_dir, *texts)
    assert r.returncode == 0, r.stderr
    answers = [json.loads(l) for l in r.stdout.splitlines()]
    assert [a['text'] for a in answers] == texts
    assert [a['skill'] for a in answers][:2] == ['airline', 'airline']
    for a in answers:
        assert list(a)[:2] == ['skill', 'router_score'] and 0 < a['router_score'] <= 1
        own = run_cli('predict', {'tweets': ner_skill, 'airline': airline_skill}[a['skill']], a['text'])
        mine = json.loads(own.stdout)
        if 'label' in mine: assert a['label'] == mine['label'] and abs(a['score'] - mine['score']) < (1e-4 if resolve_precision('auto') == 'no' else 2e-2)
        else: assert [(e['label'], e['start'], e['end']) for e in a['entities']] == [(e['label'], e['start'], e['end']) for e in mine['entities']]
    r = run_cli('predict', agent_dir, 'Paris is lovely', '--skill', 'tweets', '--format', 'conll')
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith('Paris ')
    r = run_cli('predict', agent_dir, 'hello', '--skill', 'tweets')
    assert json.loads(r.stdout)['skill'] == 'tweets' and json.loads(r.stdout)['router_score'] is None

def test_explain_answer_and_routing(agent_dir):
    r = run_cli('explain', agent_dir, '@united lost my bag again', '--json', '--max-evals', 100)
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)
    assert e['skill'] == 'airline' and [o['output'] for o in e['outputs']] == ['negative', 'neutral', 'positive']
    r = run_cli('explain', agent_dir, '@united lost my bag again', '--json', '--routing', '--max-evals', 100)
    e = json.loads(r.stdout)
    assert [o['output'] for o in e['outputs']] == ['tweets', 'airline'] and e['prediction'] == 'airline'

@pytest.mark.parametrize('args, needle', [
    (['--skill', 'tweets'], 'expected NAME=PATH'),
    (['--skill', 'a=/no/such/skill'], '/no/such/skill: no such skill folder'),
    (['--skill', 'a/b=SKILL'], "skill name 'a/b'"),
    (['--skill', 'x=SKILL', '--texts', 'y=t.txt'], '--texts names no --skill: y'),
    ([], 'needs at least one --skill'),
])
def test_bad_agent_build_is_one_line(args, needle, ner_skill, tmp_path):
    args = [str(a).replace('SKILL', str(ner_skill)) for a in args]
    r = run_cli('agent', 'build', tmp_path/'out', *args)
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count('\n') == 1, r.stderr
    assert not (tmp_path/'out').exists()

def test_skill_of_a_backbone_not_on_this_machine_is_refused(ner_skill, airline_skill, tmp_path):
    import shutil     # (a skill of another backbone that is here joins with its own model: the agent chapter)
    other = shutil.copytree(airline_skill, tmp_path/'other')
    meta = json.loads((other/'skill.json').read_text()); meta['backbone'] = 'bert-base-uncased'
    (other/'skill.json').write_text(json.dumps(meta))
    r = run_cli('agent', 'build', tmp_path/'out', '--skill', f'tweets={ner_skill}', '--skill', f'other={other}')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr        # after the line saying tweets was added
    assert "other/skill.json: backbone 'bert-base-uncased' is neither a folder nor in this machine's" in \
        r.stderr.splitlines()[-1]
    assert not (tmp_path/'out').exists()

def test_damaged_agent_names_the_file(agent_dir, tmp_path):
    import shutil
    bad = shutil.copytree(agent_dir, tmp_path/'bad')
    (bad/'skills'/'airline'/'adapter_model.safetensors').write_bytes(b'not weights')
    r = run_cli('predict', bad, 'hello')
    assert r.returncode == 2 and 'skills/airline/adapter_model.safetensors: damaged' in r.stderr and r.stderr.count('\n') == 1

@pytest.mark.parametrize('change, needle', [
    (lambda m: m['centroids'].update(tweets=[float('nan')] * 384), "agent.json: field 'centroids.tweets' is [NaN"),
    (lambda m: m.update(max_length='128'), "agent.json: field 'max_length' is \"128\", expected a whole number"),
])
def test_bad_agent_json_is_one_line(change, needle, agent_dir, tmp_path):
    import shutil
    bad = shutil.copytree(agent_dir, tmp_path/'bad')
    man = json.loads((bad/'agent.json').read_text()); change(man); (bad/'agent.json').write_text(json.dumps(man))
    r = run_cli('predict', bad, '@united thanks')
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count('\n') == 1 and r.stdout == '', r.stderr

def test_agent_refuses_a_blank_text_and_a_bad_threshold(agent_dir, ner_skill, tmp_path):
    r = run_cli('predict', agent_dir, '@united thanks', '   ')
    assert r.returncode == 2 and 'text 2: empty, nothing to predict' in r.stderr and r.stderr.count('\n') == 1, r.stderr
    r = run_cli('agent', 'build', tmp_path/'out', '--skill', f'tweets={ner_skill}', '--threshold', 5)
    assert r.returncode == 2 and 'threshold is 5.0, expected a number from 0 to 1' in r.stderr and not (tmp_path/'out').exists()

def _port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _call(port, method, path, body=None, raw=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=300)
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={'Content-Type': 'application/json'} if data is not None else {})
    r = c.getresponse(); out = r.status, json.loads(r.read() or b'null'); c.close()
    return out

def test_serve_an_agent(agent_dir):
    port = _port()
    p = subprocess.Popen([AGENTFLOW, 'serve', str(agent_dir), '--port', str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(900):
            try:
                if _call(port, 'GET', '/health')[0] == 200: break
            except OSError: time.sleep(0.1)
            assert p.poll() is None, p.stderr.read()
        s, out = _call(port, 'POST', '/predict', {'texts': ['@united my flight is late', 'Kevin in Paris']})
        assert s == 200 and out['predictions'][0]['skill'] == 'airline' and 'router_score' in out['predictions'][0]
        s, out = _call(port, 'POST', '/predict', {'texts': ['Kevin in Paris'], 'skill': 'tweets'})
        assert s == 200 and out['predictions'][0]['skill'] == 'tweets' and 'entities' in out['predictions'][0]
        assert _call(port, 'POST', '/predict', {'texts': ['x'], 'skill': 'news'}) == (422, {'detail': "no skill named 'news' (this agent has: tweets, airline)"})
        assert _call(port, 'POST', '/predict', raw=b'{"texts": ["a",')[0] == 422
        assert _call(port, 'POST', '/predict', {'texts': ['a'] * 65})[0] == 413
        assert _call(port, 'POST', '/explain', {'texts': ['a'] * 9})[0] == 413
        s, out = _call(port, 'GET', '/skills')
        assert s == 200 and [k['skill'] for k in out['skills']] == ['tweets', 'airline'] and out['router'] == 'centroid'
        s, out = _call(port, 'POST', '/explain', {'texts': ['@united lost my bag'], 'routing': True, 'max_evals': 60})
        assert s == 200 and out['explanations'][0]['prediction'] == 'airline'
        results = {}
        def client(i): results[i] = _call(port, 'POST', '/predict', {'texts': [f'@united flight {i} is late', f'Kevin {i} in Paris']})
        threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert all(r[0] == 200 and r[1]['predictions'][0]['text'] == f'@united flight {i} is late' for i, r in results.items())
        health = _call(port, 'GET', '/health')[1]
        assert health['model_calls'] < health['requests']          # concurrent requests shared model calls
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    assert 'stopped after' in p.stderr.read()

def test_serve_refuses_a_busy_port(agent_dir):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); s.listen(); port = s.getsockname()[1]
        r = run_cli('serve', agent_dir, '--port', port)
    assert r.returncode == 2 and f'port {port} on 127.0.0.1 is in use' in r.stderr and r.stderr.count('\n') == 1
