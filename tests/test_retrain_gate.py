"""The retrain promotion gate as it runs in production: its DEFAULT thresholds (no --min-judged-accuracy
or --energy-margin given), on numbers from real evaluations (pipelines.evaluation, the zoo digits
world and its judge), on both sides of each threshold. In process: no Ray, no training."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pipelines import retrain
from pipelines.evaluation import EvalBudget, evaluate_translator, fixed_conditions, world_for
from tron.translator import Translator, load_translator, save_translator
from tron.world_config import locate_world

SHIPPED = locate_world("zoo:digits") / "translator"


def default_gate() -> retrain.Gate:
    """The gate a plain `retrain.py --generator zoo:digits` applies (what a CronJob runs)."""
    pairs, _, _ = retrain.load_pairs(retrain.build_parser().parse_args(["--generator", "zoo:digits"]))
    return pairs[0].gate


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[str, dict]:
    """Real evaluations, on one fixed condition set as Workflow.evaluate scores candidate and champion:
    the shipped translator (good) and an untrained one of the same shape (bad). Langevin is cut to 5
    steps to keep the test fast; the thresholds do not depend on it."""
    broken = Path(tmp_path_factory.mktemp("gate")) / "untrained"
    shipped = load_translator(SHIPPED)
    torch.manual_seed(0)
    save_translator(Translator(shipped.config), broken, metadata=shipped.metadata)  # fits G and f; never trained
    conditions = fixed_conditions(world_for("zoo:digits", "zoo:digits", SHIPPED))
    budget = EvalBudget(steps=5)
    return {name: evaluate_translator("zoo:digits", "zoo:digits", path, seed=0, conditions=conditions, budget=budget)
            for name, path in (("good", SHIPPED), ("bad", broken))}


def test_the_default_gate_judges_accuracy_at_0_9_and_energy_within_0_05_of_the_champion():
    gate = default_gate()
    assert (gate.min_judged_accuracy, gate.energy_margin, gate.max_final_energy) == (0.9, 0.05, None)
    assert gate == retrain.Gate()


def test_judged_accuracy_at_the_default_threshold_on_both_sides(scores):
    gate = default_gate()
    good, bad = scores["good"], scores["bad"]
    assert good["judged_accuracy"] >= 0.9 > bad["judged_accuracy"], (good, bad)  # the two sides, really measured
    passed, reasons = gate.verdict(good, None)
    assert passed and reasons == [f"judged accuracy {good['judged_accuracy']:.4g} >= 0.9"]
    passed, reasons = gate.verdict(bad, None)
    assert not passed and "< 0.9" in reasons[0]
    # At the threshold itself: the judges average in float32, so 90 % of samples arrives as 0.89999998;
    # it passes. One sample in a thousand under it does not.
    exactly = float(torch.tensor([1.0] * 9 + [0.0]).mean())  # as tron.zoo.digits.judge averages
    assert exactly < 0.9
    assert gate.verdict({**good, "judged_accuracy": exactly}, None) == (True, ["judged accuracy 0.9 >= 0.9"])
    assert not gate.verdict({**good, "judged_accuracy": 0.899}, None)[0]


def test_energy_against_the_champion_at_the_default_margin_on_both_sides(scores):
    gate = default_gate()
    good, bad = scores["good"], scores["bad"]
    assert bad["energy_mean_final"] > good["energy_mean_final"] + 0.05, (good, bad)
    # a candidate as good as the champion passes; a worse one fails on energy (its accuracy aside)
    assert gate.verdict(good, good)[0]
    passed, reasons = gate.verdict({**bad, "judged_accuracy": 1.0}, good)
    assert not passed and "> champion's" in reasons[1]
    # just inside and just outside the margin, around the champion's real energy
    champion = good["energy_mean_final"]
    inside = replace_energy(good, champion + 0.05 - 1e-4)
    outside = replace_energy(good, champion + 0.05 + 1e-4)
    assert gate.verdict(inside, good) == (True, [f"judged accuracy {good['judged_accuracy']:.4g} >= 0.9",
                                                 f"mean final energy {inside['energy_mean_final']:.4f} <= champion's "
                                                 f"{champion:.4f} + 0.05"])
    passed, reasons = gate.verdict(outside, good)
    assert not passed and reasons[1].startswith(f"mean final energy {outside['energy_mean_final']:.4f} > champion's")
    # with no champion that fits G and f now (the first run, or f swapped), energy is not compared
    assert gate.verdict(outside, None)[0]


def replace_energy(evaluation: dict, energy: float) -> dict:
    return {**evaluation, "energy_mean_final": energy}


def test_the_gate_a_config_file_names_is_the_default_where_it_names_nothing():
    pair = retrain.PairConfig("zoo:digits", gate={"min_judged_accuracy": 0.8})
    assert pair.gate == replace(retrain.Gate(), min_judged_accuracy=0.8) and pair.gate.energy_margin == 0.05
