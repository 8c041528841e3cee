"Hostile clients against one real `agentflow serve` (issue 31): each case is refused with a short answer and the server goes on serving"
import json, os, signal, socket, subprocess, threading, time
import pytest
from conftest import AGENTFLOW

KEY, HEADER_SECONDS, BODY_SECONDS, MAX_CONNECTIONS, EXPLAIN_SECONDS, GRACE = 'sesame', 1, 2, 24, 4, 2
LONG = ' '.join(f'Maria{i} flew from Lisbon to Oslo with Pedro' for i in range(8))   # 64 words: minutes of SHAP at max_evals 5000

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def send(port, raw:bytes, timeout=60) -> bytes:
    "Send `raw` on a fresh connection; everything the server answers before it closes"
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        try: s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError): pass     # the server stopped reading: its answer may still be there
        out = b''
        try:
            while chunk := s.recv(65536): out += chunk
        except ConnectionResetError: pass
    return out

def request(port, method, path, body=None, headers=None, host=None, key=KEY) -> bytes:
    "A raw HTTP/1.1 request, closing its connection; `body` a dict (JSON) or bytes"
    data = json.dumps(body).encode() if isinstance(body, dict) else body or b''
    head = {'Host': host or f'127.0.0.1:{port}', 'Connection': 'close', 'Content-Type': 'application/json',
            'Content-Length': str(len(data)), **({'Authorization': f'Bearer {key}'} if key else {}), **(headers or {})}
    return (f'{method} {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in head.items()) + '\r\n').encode() + data

def answer(raw:bytes) -> tuple[int, dict, str]:
    "Status, headers and body of a raw HTTP answer"
    head, _, body = raw.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    return int(lines[0].split()[1]), {k.lower(): v.strip() for k, v in (l.split(':', 1) for l in lines[1:])}, body.decode('utf-8', 'replace')

def call(port, method, path, body=None, **kwargs):
    status, _, text = answer(send(port, request(port, method, path, body, **kwargs)))
    return status, json.loads(text) if text.startswith(('{', '[')) else text

def health(port): return call(port, 'GET', '/health', key=None)[1]

@pytest.fixture(scope='module')
def server(ner_skill, tmp_path_factory):
    "One `agentflow serve` with small limits, shared by every hostile case here (the last one stops it)"
    port, err = free_port(), tmp_path_factory.mktemp('serve')/'stderr.txt'
    with open(err, 'w') as f:
        p = subprocess.Popen([AGENTFLOW, 'serve', ner_skill, '--port', str(port), '--allow-host', 'box.example',
                              '--header-seconds', str(HEADER_SECONDS), '--body-seconds', str(BODY_SECONDS),
                              '--max-connections', str(MAX_CONNECTIONS),
                              '--explain-seconds', str(EXPLAIN_SECONDS), '--grace', str(GRACE), '--max-body', '200000'],
                             stdout=subprocess.DEVNULL, stderr=f, env={**os.environ, 'AGENTFLOW_API_KEY': KEY, 'OMP_NUM_THREADS': '1'})
    for _ in range(1200):
        try:
            if call(port, 'GET', '/health', key=None)[0] == 200: break
        except OSError: time.sleep(0.1)
        assert p.poll() is None, err.read_text()
    yield p, port, err
    if p.poll() is None: p.kill(); p.wait()

def test_serve_counts_the_body_it_reads(server):
    _, port, _ = server
    body = b'{"texts": ["' + b'x' * 300_000 + b'"]}'
    head = (f'POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n'
            f'Transfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n').encode()   # a small size declared, a large body sent
    out = send(port, head + b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 8192]), body[i:i + 8192]) for i in range(0, len(body), 8192)) + b'0\r\n\r\n')
    status, _, text = answer(out)
    assert (status, len(out) < 1000) == (413, True), out[:300]
    assert 'at most 200,000 bytes' in text

def test_serve_never_echoes_the_input(server):
    _, port, _ = server
    for body in ({'texts': 'y' * 150_000}, {'texts': ['ok'], 'z' * 150_000: 1}, b'{"texts": ["' + b'w' * 150_000):
        raw = send(port, request(port, 'POST', '/predict', body))
        assert (answer(raw)[0], len(raw) < 2000) == (422, True), raw[:300]

def test_serve_refuses_poison_texts_before_batching(server):
    _, port, _ = server
    status, out = call(port, 'POST', '/predict', b'{"texts": ["fine", "bad \\ud800"]}')
    assert (status, out['detail']) == (422, "texts[1]: not valid Unicode (a lone surrogate '\\ud800' at character 4)")
    assert call(port, 'POST', '/predict', {'texts': ['  ']})[0] == 422
    status, out = call(port, 'POST', '/predict', b'{"texts": ["fine"], "skill": "x\\ud800"}')   # quoted back safely, not a 500
    assert status == 422 and '\\ud800' in out['detail']
    got = {}
    def client(i, text): got[i] = call(port, 'POST', '/predict', {'texts': [text]})[0]
    threads = [threading.Thread(target=client, args=(i, 'bad \ud800' if i % 3 == 0 else f'Paris {i}')) for i in range(12)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert got == {i: 422 if i % 3 == 0 else 200 for i in range(12)}

def test_serve_checks_host_and_key(server):
    _, port, _ = server
    assert call(port, 'GET', '/skills', host='evil.example')[0] == 400          # DNS rebinding: a page elsewhere naming us
    assert call(port, 'GET', '/skills', host=f'evil.example:{port}')[0] == 400
    for host in (f'localhost:{port}', 'localhost', 'box.example', f'box.example:{port}'): assert call(port, 'GET', '/skills', host=host)[0] == 200
    status, headers, text = answer(send(port, request(port, 'GET', '/skills', key=None)))
    assert (status, headers.get('www-authenticate')) == (401, 'Bearer')
    assert call(port, 'GET', '/skills', key='wrong')[0] == 401
    assert call(port, 'POST', '/predict', {'texts': ['hi']}, key=None)[0] == 401
    assert call(port, 'GET', '/health', key=None)[0] == 200

def test_serve_docs_offline(server):
    _, port, _ = server
    status, page = call(port, 'GET', '/docs')
    assert status == 200 and '/openapi.json' in page and '/predict' in page
    assert '<script' not in page and 'http' not in page.replace('/openapi.json', '')
    assert call(port, 'GET', '/redoc')[0] == 404

def test_serve_closes_slow_headers_and_caps_connections(server):
    p, port, _ = server
    with socket.create_connection(('127.0.0.1', port), timeout=30) as s:
        s.sendall(b'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')           # never finishes its headers
        assert s.recv(100) == b''                                             # closed after HEADER_SECONDS, not held
    socks = [socket.create_connection(('127.0.0.1', port), timeout=30) for _ in range(MAX_CONNECTIONS + 5)]
    try: assert socks[-1].recv(100).startswith(b'HTTP/1.1 503')
    finally:
        for s in socks: s.close()
    with socket.create_connection(('127.0.0.1', port), timeout=30) as s:          # a body that trickles in
        s.sendall(request(port, 'POST', '/predict', b'{"texts": ["x"]}')[:-5])
        assert answer(s.recv(1000))[0] == 408                                 # after BODY_SECONDS, not held
    limits = open(f'/proc/{p.pid}/limits').read()
    soft, hard = next(l.split()[3:5] for l in limits.splitlines() if l.startswith('Max open files'))
    assert soft == hard

def explain_socket(port, texts, max_evals=5000):
    "An /explain request sent on a socket left open (to read, or to drop)"
    s = socket.create_connection(('127.0.0.1', port), timeout=120)
    s.sendall(request(port, 'POST', '/explain', {'texts': texts, 'max_evals': max_evals}))
    return s

def wait_for(port, key, value, tries=600):
    for _ in range(tries):
        if health(port)[key] == value: return True
        time.sleep(0.1)
    return False

def test_serve_explains_beside_predictions_and_stops_when_the_client_goes(server):
    _, port, _ = server
    s = explain_socket(port, [LONG, LONG])
    assert wait_for(port, 'explaining', True)
    assert call(port, 'POST', '/predict', {'texts': ['Justin Bieber in Toronto']})[0] == 200   # not queued behind SHAP
    assert health(port)['explaining']
    status, out = call(port, 'POST', '/explain', {'texts': ['one more']})
    assert status == 429 and 'one at a time' in out['detail']
    s.close()                                                                 # the client goes: the work stops
    assert wait_for(port, 'explaining', False, tries=300)
    assert health(port)['explains_stopped'] == 1

def test_serve_explain_has_a_budget(server):
    _, port, _ = server
    status, out = call(port, 'POST', '/explain', {'texts': [LONG, LONG], 'max_evals': 5000})
    assert status == 422 and f'budget of {EXPLAIN_SECONDS} s' in out['detail']
    assert wait_for(port, 'explaining', False)                                # its last model call ends, and the next may begin
    assert call(port, 'POST', '/explain', {'texts': ['hello'], 'max_evals': 10})[0] == 200

def test_serve_stops_within_its_grace_during_an_explanation(server):
    p, port, err = server
    s = explain_socket(port, [LONG])
    assert wait_for(port, 'explaining', True)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=GRACE + 30) == 0        # the old server lived on for minutes, its model thread busy
    s.close()
    log = err.read_text()
    assert 'stopped after' in log and log.count('too many connections') == 1
