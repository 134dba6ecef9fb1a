"""launch/launch_ros are not installable here, so the launch file is checked statically:
it parses, and every executable, parameter and argument it names exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from taskmem_ros.config import CONFIG_KEYS, TrainingConfig, load_config, read_params_file, to_flat
from taskmem_ros.node_config import MemorizerParams, TaskServerParams, TunerParams

PKG = Path(__file__).resolve().parents[2]
LAUNCH = PKG / "launch" / "robot.launch.py"
OFFBOARD = PKG / "launch" / "offboard.launch.py"
TRAINING_KEYS = frozenset(to_flat(TrainingConfig()))


def _console_scripts() -> set[str]:
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return {ast.literal_eval(e).split("=")[0].strip() for e in v.elts}  # type: ignore[attr-defined]
    raise AssertionError("setup.py has no console_scripts")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)
    ]


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


@pytest.mark.parametrize("launch_file", [LAUNCH, OFFBOARD], ids=lambda p: p.name)
def test_launch_file_parses_and_defines_entry_point(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_one_lifecycle_path_autostart_or_launch_as_manager() -> None:
    """Launch files bring nodes up only through launch_support.lifecycle_node: LifecycleNode with
    autostart where launch_ros has it, configure + activate-on-inactive events otherwise."""
    from taskmem_ros import launch_support

    for launch_file in (LAUNCH, OFFBOARD):
        tree = ast.parse(launch_file.read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert any(n.module == "taskmem_ros.launch_support" for n in imports), launch_file.name
        assert not _calls(tree, "LifecycleNode") and not _calls(tree, "ChangeState")
    tree = ast.parse(Path(launch_support.__file__).read_text())
    (auto,) = [c for c in _calls(tree, "LifecycleNode") if _kw(c, "autostart") is not None]
    assert ast.literal_eval(_kw(auto, "autostart")) is True  # type: ignore[arg-type]
    changes = [c for c in _calls(tree, "change") if c.args]
    assert {ast.unparse(c.args[0]).rsplit(".", 1)[-1] for c in changes} == {
        "TRANSITION_CONFIGURE",
        "TRANSITION_ACTIVATE",
    }
    handler = _calls(tree, "OnStateTransition")[0]
    assert ast.literal_eval(_kw(handler, "goal_state")) == "inactive"  # type: ignore[arg-type]


def test_executables_exist_in_setup() -> None:
    tree = ast.parse(LAUNCH.read_text())
    nodes = _calls(tree, "lifecycle_node")
    assert {ast.literal_eval(_kw(n, "name")) for n in nodes} == {"memorizer", "task_server"}  # type: ignore[arg-type]
    scripts = _console_scripts()
    for n in nodes:
        assert ast.literal_eval(_kw(n, "package")) == "taskmem_ros"  # type: ignore[arg-type]
        assert ast.literal_eval(_kw(n, "executable")) in scripts  # type: ignore[arg-type]
    plain = _calls(tree, "Node")
    assert [ast.literal_eval(_kw(n, "executable")) for n in plain] == ["taskmem-bringup"]  # type: ignore[arg-type]
    assert "taskmem-bringup" in scripts


def test_launch_arguments_are_declared_and_used() -> None:
    tree = ast.parse(LAUNCH.read_text())
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert {"namespace", "use_sim_time", "params_file", "image_topic", "audio_topic"} <= declared
    assert used == declared


def test_parameters_named_in_launch_and_yaml_exist_on_the_nodes() -> None:
    from taskmem_ros.training.cli import load_training_params

    MEM, TASK, TUNER = (to_flat(p()) for p in (MemorizerParams, TaskServerParams, TunerParams))

    known = {
        "memorizer": set(MEM) | CONFIG_KEYS,
        "task_server": set(TASK) | CONFIG_KEYS,
        "tuner": set(TUNER) | CONFIG_KEYS | TRAINING_KEYS,
    }
    for params_file in sorted((PKG / "config").glob("*.yaml")):
        for node, valid in known.items():
            names = set(read_params_file(params_file, node))
            assert names <= valid, f"{params_file.name} {node}: unknown parameters {names - valid}"
            load_config(params_file, node)  # values valid too
        load_training_params(params_file)  # the tuner's TrainingConfig values too
    offboard = read_params_file(PKG / "config" / "offboard.yaml", "tuner")
    assert {"store.url", "model.model_id", "every_n_tasks", "phase2.adapter"} <= set(offboard)
    tree = ast.parse(LAUNCH.read_text())
    for call in _calls(tree, "lifecycle_node"):
        node = ast.literal_eval(_kw(call, "name"))  # type: ignore[arg-type]
        params = _kw(call, "parameters")
        assert isinstance(params, ast.List)
        for item in ast.walk(params):
            if isinstance(item, ast.Dict):
                for k in item.keys:
                    assert ast.literal_eval(k) in known[node] | {"use_sim_time"}  # type: ignore[arg-type]
    for var in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for assign in (a for a in ast.walk(var) if isinstance(a, ast.Assign) and isinstance(a.value, ast.Dict)):
            for k in assign.value.keys:  # type: ignore[attr-defined]
                assert ast.literal_eval(k) in CONFIG_KEYS | set(MEM) | {"use_sim_time"}


def test_offboard_launch_starts_the_tuner() -> None:
    tree = ast.parse(OFFBOARD.read_text())
    nodes = _calls(tree, "lifecycle_node")
    assert [ast.literal_eval(_kw(n, "name")) for n in nodes] == ["tuner"]  # type: ignore[arg-type]
    assert ast.literal_eval(_kw(nodes[0], "package")) == "taskmem_ros"  # type: ignore[arg-type]
    assert ast.literal_eval(_kw(nodes[0], "executable")) == "tuner_node"  # type: ignore[arg-type]
    assert "tuner_node" in _console_scripts()
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration")}
    assert {"namespace", "use_sim_time", "params_file", "robot_namespace"} == declared == used
    assert "offboard.yaml" in OFFBOARD.read_text()
    assert not _calls(tree, "ChangeState")  # one lifecycle path: launch_support


def test_offboard_launch_parameters_exist_on_the_tuner() -> None:
    TUNER = to_flat(TunerParams())
    tree = ast.parse(OFFBOARD.read_text())
    for var in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for assign in (a for a in ast.walk(var) if isinstance(a, ast.Assign) and isinstance(a.value, ast.Dict)):
            for k in assign.value.keys:  # type: ignore[attr-defined]
                assert ast.literal_eval(k) in CONFIG_KEYS | TRAINING_KEYS | set(TUNER) | {"use_sim_time"}
