"The OpenAI API of `agentflow serve` (issue 33), spoken by the real `openai` client to a real server over a socket"
import json, os, signal, socket, subprocess, threading, time
import pytest
from conftest import AGENTFLOW

openai = pytest.importorskip('openai', reason='the openai client is a dev requirement: pip install openai')
MAX_TOKENS, MAX_PROMPT_TOKENS, MAX_WAITING = 1024, 200, 4    # 1024 tokens streamed: more than the socket buffers hold
ASK = [{'role': 'user', 'content': 'Say red twice'}]

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def writer(tmp_path_factory):
    "A generate skill trained for a moment on a tiny random language model (serving does not mind what it writes)"
    from agentflow.generate.lm import tiny_lm
    from agentflow.recipes import TrainConfig, train_skill
    d = tmp_path_factory.mktemp('writer')
    words = 'red green blue cat dog sun moon star tree sky'.split()
    (d/'twice.jsonl').write_text('\n'.join(json.dumps(dict(prompt=f'Say {w} twice', completion=f'{w} {w}'))
                                           for w in words * 2))
    train_skill(TrainConfig(train=d/'twice.jsonl', out=d/'sk', task='generate', model=tiny_lm(d/'tiny'), epochs=1,
                            max_length=64, precision='no', report_examples=2,
                            task_args=dict(eval_examples=2, max_new_tokens=8)), log=lambda s: None)
    return d/'sk'

@pytest.fixture(scope='module')
def skill(writer):
    "The same skill in this process, for the answers the server should give"
    from agentflow.skill import Skill
    return Skill.load(writer)

@pytest.fixture(scope='module')
def server(writer, tmp_path_factory):
    "One `agentflow serve` of the skill, with small limits; stopped with SIGTERM at the end"
    port, err = free_port(), tmp_path_factory.mktemp('serve')/'stderr.txt'
    with open(err, 'w') as f:
        p = subprocess.Popen([AGENTFLOW, 'serve', writer, '--port', str(port), '--precision', 'no',
                              '--max-tokens', str(MAX_TOKENS), '--max-prompt-tokens', str(MAX_PROMPT_TOKENS),
                              '--max-waiting', str(MAX_WAITING)],
                             stdout=subprocess.DEVNULL, stderr=f, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    probe = openai.OpenAI(base_url=f'http://127.0.0.1:{port}/v1', api_key='x', max_retries=0, timeout=5)
    for _ in range(1200):
        try: probe.models.list(); break
        except openai.APIConnectionError: time.sleep(0.1)
        assert p.poll() is None, err.read_text()
    yield p, port, err
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0

@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f'http://127.0.0.1:{server[1]}/v1', api_key='x', max_retries=0, timeout=120)

def test_models_lists_the_skill_by_its_folder_name(client, server):
    assert [m.id for m in client.models.list()] == ['sk']
    assert client.models.retrieve('sk').owned_by == 'agentflow'
    assert "OpenAI's API at /v1, model sk" in server[2].read_text()

def test_chat_completion_is_the_skills_answer_with_its_token_counts(client, skill):
    got = client.chat.completions.create(model='sk', messages=ASK, max_tokens=6, temperature=0)
    mine = skill.generate([ASK], max_new_tokens=6, precision='no')[0]
    assert got.object == 'chat.completion' and got.model == 'sk' and got.id.startswith('chatcmpl-')
    assert (got.choices[0].message.role, got.choices[0].message.content) == ('assistant', mine['text'])
    assert got.choices[0].finish_reason == mine['finish']
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (mine['prompt_tokens'], mine['tokens'])
    assert got.usage.total_tokens == mine['prompt_tokens'] + mine['tokens']

def test_completion_answers_each_prompt(client, skill):
    prompts = ['Say red twice', 'Say a longer sentence about the sky twice']
    got = client.completions.create(model='sk', prompt=prompts, max_tokens=5, stop=['\n\n\n'])
    mine = skill.generate(prompts, max_new_tokens=5, stop=['\n\n\n'], precision='no')
    assert got.object == 'text_completion'
    assert [(c.index, c.text, c.finish_reason) for c in got.choices] == [(i, a['text'], a['finish'])
                                                                       for i, a in enumerate(mine)]
    assert got.usage.prompt_tokens == sum(a['prompt_tokens'] for a in mine)
    assert got.usage.completion_tokens == sum(a['tokens'] for a in mine)

def test_stream_gives_the_greedy_answer_piece_by_piece(client):
    whole = client.chat.completions.create(model='sk', messages=ASK, max_tokens=12)
    chunks = list(client.chat.completions.create(model='sk', messages=ASK, max_tokens=12, stream=True,
                                                 stream_options={'include_usage': True}))
    assert {c.object for c in chunks} == {'chat.completion.chunk'} and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == 'assistant'
    assert ''.join(c.choices[0].delta.content or '' for c in chunks if c.choices) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    pieces = list(client.completions.create(model='sk', prompt='Say sun twice', max_tokens=7, stream=True))
    assert ''.join(c.choices[0].text for c in pieces) == client.completions.create(
        model='sk', prompt='Say sun twice', max_tokens=7).choices[0].text

def test_unknown_model_is_404_and_never_a_path(client, writer):
    for name in ('nope', str(writer), '../sk'):
        with pytest.raises(openai.NotFoundError) as e: client.chat.completions.create(model=name, messages=ASK)
        assert (e.value.code, e.value.param) == ('model_not_found', 'model')
    with pytest.raises(openai.NotFoundError): client.models.retrieve('nope')

def test_malformed_requests_are_400_naming_the_field(client):
    cases = [(dict(temperature=5), 'temperature'), (dict(max_tokens='5'), 'max_tokens'), (dict(n=2), 'n'),
             (dict(messages=[{'role': 'user', 'content': 5}]), 'messages[0].content'),
             (dict(messages=[{'role': 'robot', 'content': 'hi'}]), 'messages[0].role'),
             (dict(extra_body={'frobnicate': 1}), 'frobnicate'), (dict(stop=['a', '']), 'stop')]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(**{'model': 'sk', 'messages': ASK, **kwargs})
        assert e.value.param == param and e.value.message.startswith(f'Error code: 400'), (kwargs, e.value.body)
        assert param in e.value.body['message']
    with pytest.raises(openai.BadRequestError) as e: client.completions.create(model='sk', prompt=[1, 2, 3])
    assert e.value.param == 'prompt'

def test_oversized_requests_are_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model='sk', messages=ASK, max_tokens=MAX_TOKENS + 1)
    assert e.value.param == 'max_tokens' and f'at most {MAX_TOKENS:,}' in e.value.body['message']
    for prompt in ('red ' * MAX_PROMPT_TOKENS, 'r' * 10_001):       # too many tokens; too many characters
        with pytest.raises(openai.BadRequestError) as e: client.completions.create(model='sk', prompt=prompt)
        assert (e.value.param, e.value.code) == ('prompt', 'context_length_exceeded')
    with pytest.raises(openai.APIStatusError) as e:                  # past the body limit: the guard's 413, same shape
        client.completions.create(model='sk', prompt='r' * 2_100_000)
    assert e.value.status_code == 413 and 'too large' in e.value.body['message']

def slow_stream(port, max_tokens):
    "A streamed request on a socket that reads its first bytes, then nothing (a small receive buffer: it fills)"
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(('127.0.0.1', port)); s.settimeout(120)
    body = json.dumps(dict(model='sk', messages=ASK, max_tokens=max_tokens, stream=True)).encode()
    s.sendall(f'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n'
              f'Content-Length: {len(body)}\r\nConnection: close\r\n\r\n'.encode() + body)
    assert s.recv(100).startswith(b'HTTP/1.1 200')
    return s

def test_a_slow_stream_reader_stalls_no_one(client, server):
    s = slow_stream(server[1], MAX_TOKENS)
    try:
        t0 = time.time()
        assert client.chat.completions.create(model='sk', messages=ASK, max_tokens=4).usage.completion_tokens == 4
        assert len(list(client.completions.create(model='sk', prompt='Say sky twice', max_tokens=4, stream=True))) == 5
        assert time.time() - t0 < 60
        out = b''                                            # the slow reader still gets all of its answer
        while chunk := s.recv(65536): out += chunk
        events = [e.strip() for e in out.split(b'\r\n') if e.startswith(b'data: ')]     # one event per chunk
        assert events[-1] == b'data: [DONE]' and json.loads(events[-2][6:])['choices'][0]['finish_reason'] == 'length'
    finally: s.close()
    gone = slow_stream(server[1], MAX_TOKENS); gone.close()  # a client that hangs up: the model stops, others go on
    assert client.chat.completions.create(model='sk', messages=ASK, max_tokens=2).usage.completion_tokens == 2

def test_requests_past_the_waiting_limit_get_429(client):
    got = []
    def ask():
        try:
            got.append(len(list(client.chat.completions.create(model='sk', messages=ASK, max_tokens=200, stream=True))))
        except openai.RateLimitError as e: got.append((e.code, e.response.headers.get('retry-after')))
    threads = [threading.Thread(target=ask) for _ in range(4 * MAX_WAITING)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert ('rate_limit_exceeded', '1') in got and sum(isinstance(g, int) for g in got) >= MAX_WAITING, got
    assert client.completions.create(model='sk', prompt='Say red twice', max_tokens=2).choices[0].finish_reason
