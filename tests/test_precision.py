"The fast path is the default: 'auto' precision everywhere a user trains or predicts, at the scores of fp32"
import json
import pytest
from conftest import run_cli, write_conll
from agentflow.core import fast_bf16, resolve_precision

def test_auto_is_the_default_of_every_entry_point():
    import inspect
    from agentflow.skill import Skill
    from agentflow.learner import Learner
    from agentflow.recipes import TrainConfig
    from agentflow.agent import Agent
    from agentflow.serve import Served, serve
    from agentflow.explain import explain
    for fn, arg in ((Skill.predict, 'precision'), (Skill.outputs, 'precision'), (Skill.logits, 'precision'), (Skill.evaluate, 'precision'),
                    (Learner.__init__, 'mixed_precision'), (Agent.__call__, 'precision'), (Agent.route, 'precision'),
                    (Served.__init__, 'precision'), (serve, 'precision'), (explain, 'precision')):
        assert inspect.signature(fn).parameters[arg].default == 'auto', fn.__qualname__
    assert TrainConfig.__dataclass_fields__['precision'].default == 'auto'

@pytest.mark.skipif(not fast_bf16(), reason="bf16 is not native on this machine: 'auto' runs fp32, the same code as --precision no")
def test_auto_precision_trains_to_the_scores_of_fp32(tmp_path):
    "Where 'auto' means bf16, a skill trained with the defaults scores as one trained in fp32 (same seed, same data)"
    from agentflow.data import wnut16
    dsd = wnut16()
    files = {s: write_conll(tmp_path/f'{s}.txt', dsd[s].select(range(min(n, len(dsd[s]))))) for s, n in (('train', 1200), ('valid', 100), ('test', 400))}
    f1 = {}
    for precision in ('auto', 'no'):
        out = tmp_path/precision
        r = run_cli('train', '--train', files['train'], '--valid', files['valid'], '--test', files['test'], '--epochs', 3,
                    '--lr', 1e-3, '--precision', precision, '--out', out)
        assert r.returncode == 0, r.stderr[-2000:]
        f1[precision] = json.loads((out/'metrics.json').read_text())['test']['f1']
    assert resolve_precision('auto') == 'bf16'
    assert f1['auto'] >= f1['no'] - 0.05, f1
