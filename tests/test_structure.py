"""The structure the features stand on: worlds and conditions as data, one component table, kinds
found through entry points, and a library that does not import the runtime."""
import ast
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

import tron
from tron import conditions
from tron.errors import CheckpointError, ConditionError
from tron.specs import SCHEMES, parse_adapter_spec
from tron.world import load_world
from tron.world_config import WorldConfig, locate_world


def test_the_library_imports_neither_ray_nor_mlflow_nor_boto3():
    code = ("import sys, tron.cli, tron.world, tron.sampler, tron.components, tron.judges, tron.world_config, tron.conditions; "
            "from tron.world import load_world; w = load_world('zoo:digits'); w.sampler(); "
            "print(sorted(m for m in ('ray', 'mlflow', 'boto3', 'botocore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def tron_import_graph() -> dict[str, set[str]]:
    """module -> the tron modules it imports, read from the source: module-level and function-level
    imports alike (a function-level import runs at call time, but a cycle through it is still a cycle)."""
    root = Path(tron.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets, each as the modules around it."""
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_tron_has_no_import_cycles():
    graph = tron_import_graph()
    assert {"tron.cli", "tron.world", "tron.components", "tron.zoo.shapes.judge"} <= set(graph)
    assert "tron.world_config" in graph["tron.components"] and "tron.components" in graph["tron.world"]
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in tron/: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_test_sees_function_level_imports():
    graph = {"a": {"b"}, "b": set()}
    assert import_cycles(graph) == []
    code = "def f():\n    from .cli import main\n"
    edges = {n.module for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ImportFrom)}
    assert edges == {"cli"}  # ast.walk reaches into function bodies
    assert import_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]


@pytest.mark.parametrize("group", ["tron.generators", "tron.encoders", "tron.captioners"])
def test_every_kind_entry_point_names_its_class(group):
    from tron.captioners import CAPTIONERS
    from tron.encoders import ENCODERS
    from tron.generators import GENERATORS

    registry = {"tron.generators": GENERATORS, "tron.encoders": ENCODERS, "tron.captioners": CAPTIONERS}[group]
    names = {ep.name for ep in entry_points(group=group)}
    assert names and names <= set(registry.names())
    for name in names:
        try:
            cls = registry.get(name)
        except Exception as exc:  # an optional dependency may be missing: the error says so in one line
            assert "cannot be imported" in str(exc)
            continue
        assert cls.registry_name == name


def test_world_json_is_strict():
    doc = json.loads((locate_world("zoo:digits") / "world.json").read_text())
    config = WorldConfig.from_dict(doc)
    assert WorldConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # a lossless round trip
    for bad, message in [({**doc, "batch_size": 64}, "unknown field"),
                         ({**doc, "langevin": {**doc["langevin"], "stepsize": 0.1}}, "unknown Langevin setting"),
                         ({**doc, "translators": {"texts": "t"}}, "unknown translator kind"),
                         ({**doc, "translator_std_scale": 0}, "translator_std_scale")]:
        with pytest.raises(ValueError, match=message):
            WorldConfig.from_dict(bad)


def test_a_bad_world_json_is_a_one_line_checkpoint_error(tmp_path):
    import shutil

    shutil.copytree(locate_world("zoo:digits"), tmp_path / "w")
    doc = json.loads((tmp_path / "w" / "world.json").read_text())
    (tmp_path / "w" / "world.json").write_text(json.dumps({**doc, "langevin": {"steps": -3}}))
    with pytest.raises(CheckpointError, match="steps must be an integer >= 0"):
        load_world(tmp_path / "w")


def test_every_scheme_parses_its_usage():
    examples = {"open_clip": "open_clip:ViT-B-32:openai", "torchvision": "torchvision:resnet18:/w.pth",
                "efficientnet": "efficientnet:lite0#image_size=160", "biggan": "biggan:/m#truncation=0.4",
                "consistency": "consistency:/m", "gan-face-generate": "gan-face-generate", "torchscript": "torchscript:/g.pt",
                "plugin": "my.module:factory#x=1", "caption-bank": "caption-bank:/bank.json"}
    assert set(examples) == set(SCHEMES)
    for scheme, spec in examples.items():
        adapter = parse_adapter_spec(spec)
        assert adapter is not None and adapter.scheme == scheme, spec
    assert parse_adapter_spec("efficientnet:lite0").options == {} and parse_adapter_spec("zoo:digits") is None


def test_conditions_for_any_encoder_and_one_line_refusals():
    world = load_world("zoo:digits")
    cond = conditions.build(world.encoder, labels=["3", 7])
    assert cond.kind == "label" and cond.space == "main" and cond.c.argmax(1).tolist() == [3, 7]
    with pytest.raises(ConditionError, match=r"takes label, not text"):
        conditions.from_text(world.encoder, ["a seven"])
    with pytest.raises(ConditionError, match="not both"):
        conditions.build(world.encoder, labels=[1], items=[("text", "x")])
    shapes = load_world("zoo:shapes")
    composed = conditions.build(shapes.encoder, items=[("text", "a circle"), ("text", "a red shape")], weights=[1, -0.5])
    assert composed.c.shape == (1, 64) and composed.kind == "text" and "composition" in composed.description
    path = conditions.build(shapes.encoder, items=[("text", "a circle"), ("text", "a square")], interpolate_steps=4)
    assert path.c.shape == (4, 64) and torch.allclose(path.c.norm(dim=1), torch.ones(4), atol=1e-5)
    with pytest.raises(ConditionError, match="takes text or image, not label"):
        conditions.from_labels(shapes.encoder, [3])
    for empty in ["", " \t", "\u200b\u2060", "\x00\x1b"]:
        with pytest.raises(ConditionError, match="empty"):
            conditions.normalize_prompt(empty)
    assert conditions.normalize_prompt(" a\u200b red\ncircle ") == "a red circle"


def test_class_names_resolve_to_indices_with_close_names_in_the_error():
    world = load_world("zoo:digits")
    assert world.encoder.label_index("7") == 7 and world.encoder.label_index(7) == 7
    with pytest.raises(ConditionError, match="out of range"):
        world.encoder.label_index(10)


def test_judges_are_named_in_world_json():
    from tron.judges import load_judge
    from tron.zoo.digits.judge import DigitsJudge

    for name in ("digits", "digits-cm"):
        world = load_world(f"zoo:{name}")
        assert isinstance(load_judge(world), DigitsJudge)  # the promotion gate judges digits-cm too


def test_commands_of_other_packages_come_through_entry_points():
    found = {ep.name: ep.value for ep in entry_points(group="tron.commands")}
    assert found == {"serve": "pipelines.serve.cli:main", "watch": "pipelines.retrain:watch"}
