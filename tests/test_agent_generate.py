"An agent holding a skill that writes, end to end at the command line: built beside a classifier, routed, answering text"
import contextlib, io, json
import pytest
from conftest import run_cli

pytest.importorskip('gguf', reason="the gen extra is not installed: pip install -e '.[gen]'")

AIRLINE = ['@united lost my bag again', '@united my flight was delayed three hours', '@SouthwestAir thanks for the '
           'great service', '@AmericanAir still waiting at the gate', '@JetBlue the crew was lovely',
           '@united cancelled my flight and no refund', '@Delta my seat was broken', '@SouthwestAir boarding was quick']
WORDS = 'red green blue cat dog sun moon star tree sky'.split()

def in_process(*args) -> tuple[int, str, str]:
    "`agentflow ARGS` in this process (no second start-up of torch): exit code, stdout, stderr"
    from agentflow.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(map(str, args)))
    return code, out.getvalue(), err.getvalue()

@pytest.fixture(scope='module')
def agent_dir(tmp_path_factory):
    "An agent of two tiny skills: a classifier on the shipped MiniLM (untrained), and a generate skill on a tiny LM"
    from agentflow.skill import Skill
    from agentflow.tasks import TextClassification
    from agentflow.generate import LanguageModeling, tiny_lm
    d = tmp_path_factory.mktemp('writer')
    airline = Skill.new(TextClassification(['negative', 'neutral', 'positive'])).save(d/'airline')
    (airline/'texts.json').write_text(json.dumps(AIRLINE))
    # untrained (`agentflow train --task generate` keeps its prompts in texts.json the same way: the batches chapter)
    twice = Skill.new(LanguageModeling(max_new_tokens=5), tiny_lm(d/'tiny'), max_length=64).save(d/'twice')
    (twice/'texts.json').write_text(json.dumps([f"Say {w} twice" for w in WORDS]))
    # the generate skill first: a language model never becomes the backbone the router reads
    r = run_cli('agent', 'build', d/'agent', '--skill', f'twice={twice}', '--skill', f'airline={airline}')
    assert r.returncode == 0, r.stderr
    assert 'added twice: Skill(LanguageModeling' in r.stderr
    return d/'agent'

def test_agent_routes_to_a_skill_that_writes_and_it_answers_with_text(agent_dir):
    man = json.loads((agent_dir/'agent.json').read_text())
    assert man['backbone'] == 'default' and [(s['name'], s['task']) for s in man['skills']] == [
        ('twice', 'generate'), ('airline', 'classify')]
    texts = ['@united lost my luggage again', 'Say moon twice', '@Delta the flight was delayed', 'Say red twice']
    r = run_cli('predict', agent_dir, *texts)
    assert r.returncode == 0, r.stderr
    answers = [json.loads(l) for l in r.stdout.splitlines()]
    assert [a['skill'] for a in answers] == ['airline', 'twice', 'airline', 'twice']        # in the order given
    for a, t in zip(answers, texts):
        assert list(a)[:2] == ['skill', 'router_score'] and 0.5 <= a['router_score'] <= 1
        if a['skill'] == 'twice':
            assert a['prompt'] == t and isinstance(a['text'], str) and a['tokens'] <= 5 and a['finish'] in ('length', 'stop')
        else: assert a['text'] == t and a['label'] in ('negative', 'neutral', 'positive')
    # the texts written are the skill's own answers
    from agentflow.skill import Skill
    twice = Skill.load(agent_dir/'skills'/'twice')
    assert [a['text'] for a in answers[1::2]] == [p['text'] for p in twice.predict(texts[1::2])]
    # --skill sends every text to it; --format text prints the texts written
    code, out, err = in_process('predict', agent_dir, '@united thanks', 'Say sky twice', '--skill', 'twice', '--format',
                                'text')
    assert code == 0, err
    assert out == ''.join(p['text'] + '\n' for p in twice.predict(['@united thanks', 'Say sky twice']))

def test_explaining_a_text_routed_to_a_skill_that_writes_is_one_line(agent_dir):
    code, out, err = in_process('explain', agent_dir, 'Say moon twice', '--max-evals', 20)
    assert code == 2 and err.count('\n') == 1 and out == '', err
    assert 'explanations of generate skills are not available yet' in err
