"""The evaluation pipeline: comparisons, segments, time, VW targets, reports and the command."""

import json

import numpy as np
import pandas as pd
import pytest

from bandit import BaselineRules, Condition, EpsilonGreedy, PolicySettings, Rule
from offline_eval.estimators import DirectMethod, DoublyRobust, InverseProbabilityWeighting, SelfNormalizedIPS
from offline_eval.evaluate import EvaluationSettings, evaluate
from offline_eval.report import format_table, write_report, write_results
from offline_eval.synthetic import SyntheticBandit
from offline_eval.targets import (
    BaselineTarget,
    CheckpointTarget,
    CounterfactualVW,
    FixedDistribution,
    LoggingPolicy,
    UniformRandom,
)
from serving.cli import main

BANDIT = SyntheticBandit(seed=2)
ESTIMATORS = (DirectMethod(), InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust())


def _split_policy():
    """Best action in segment s0, worst action elsewhere: helps one segment, hurts the others."""
    click = BANDIT.click_probability
    policy = np.zeros_like(click)
    segment = np.arange(BANDIT.n_cells) // BANDIT.n_devices
    choice = np.where(segment == 0, click.argmax(axis=1), click.argmin(axis=1))
    policy[np.arange(BANDIT.n_cells), choice] = 1.0
    return policy


def test_segment_breakdown_shows_opposite_lifts():
    data = BANDIT.sample(6000, seed=1)
    split = BANDIT.target(_split_policy(), data, "split")
    settings = EvaluationSettings(
        estimators=ESTIMATORS, interval="normal", segment_columns=("user.segment",), reference="logging"
    )
    result = evaluate(data, [LoggingPolicy(), split], settings)
    rows = result.segments[(result.segments["policy"] == "split") & (result.segments["estimator"] == "dr")]
    by_value = rows.set_index("value")
    assert by_value.loc["s0", "lift_lower"] > 0.0
    assert by_value.loc["s1", "lift_upper"] < 0.0
    assert by_value["rows"].sum() == data.n_rows


def test_paired_difference_narrower_than_either_interval():
    data = BANDIT.sample(3000, seed=2)
    greedy = BANDIT.greedy_policy(0.3)
    close = BANDIT.greedy_policy(0.35)
    targets = [BANDIT.target(greedy, data, "a"), BANDIT.target(close, data, "b")]
    result = evaluate(data, targets, EvaluationSettings(estimators=ESTIMATORS, n_resamples=300))
    comparison = result.comparisons.set_index("estimator").loc["ips"]
    single = result.estimates.set_index(["policy", "estimator"]).loc[("b", "ips")]
    assert comparison["upper"] - comparison["lower"] < 0.3 * (single["upper"] - single["lower"])
    assert comparison["difference"] == pytest.approx(single["estimate"] - result.estimates.iloc[1]["estimate"])


def test_logging_without_pmf_compared_through_on_policy_mean():
    data = BANDIT.sample(2000, seed=3)
    no_pmf = type(data)(**{**data.__dict__, "logging_pmf": None})
    result = evaluate(no_pmf, [LoggingPolicy(), UniformRandom()], EvaluationSettings(estimators=ESTIMATORS, n_resamples=100))
    estimates = result.estimates.set_index(["policy", "estimator"])
    assert np.isnan(estimates.loc[("logging", "dr"), "estimate"])
    assert estimates.loc[("logging", "ips"), "estimate"] == pytest.approx(data.reward.mean())
    comparison = result.comparisons.set_index("estimator").loc["dr"]
    assert comparison["reference_estimator"] == "on-policy mean"
    assert comparison["difference"] == pytest.approx(estimates.loc[("uniform", "dr"), "estimate"] - data.reward.mean())


def test_over_time_windows_cover_all_rows():
    data = BANDIT.sample(1000, seed=4)
    settings = EvaluationSettings(estimators=ESTIMATORS, interval="normal", time_bins=4)
    result = evaluate(data, [UniformRandom()], settings)
    assert len(result.over_time) == 4 * len(ESTIMATORS)
    assert result.over_time.groupby("window")["rows"].first().sum() == 1000


def test_duplicate_target_names_rejected():
    data = BANDIT.sample(100, seed=5)
    with pytest.raises(ValueError, match="target names must be unique"):
        evaluate(data, [UniformRandom(), UniformRandom()])


def test_invalid_target_distribution_rejected():
    data = BANDIT.sample(100, seed=6)
    bad = np.full((100, BANDIT.n_actions), 0.5)
    with pytest.raises(ValueError, match=r"target 'bad': row 0 is not a probability distribution"):
        evaluate(data, [FixedDistribution(bad, name="bad")])


def _assert_within_standard_errors(result, truth, count=3.5):
    """Each estimate lies within ``count`` standard errors (from its 95% normal interval) of the truth."""
    for row in result.estimates.to_dict(orient="records"):
        standard_error = (row["upper"] - row["lower"]) / (2 * 1.96)
        assert abs(row["estimate"] - truth) < count * standard_error, (row, truth)


def _row_truth(data, probabilities):
    """Expected reward of the target's decisions on the logged contexts."""
    click = BANDIT.click_probability[BANDIT.cells_of(data)]
    return float((probabilities * click).sum(axis=1).mean())


def test_counterfactual_vw_and_checkpoint_near_truth(tmp_path):
    data = BANDIT.sample(3000, seed=7)
    candidate = CounterfactualVW(PolicySettings("candidate", exploration=EpsilonGreedy(0.1)))
    settings = EvaluationSettings(estimators=ESTIMATORS, interval="normal")
    result = evaluate(data, [candidate], settings)
    _assert_within_standard_errors(result, _row_truth(data, candidate.distribution(data)))

    path = tmp_path / "candidate.ckpt"
    path.write_bytes(candidate.final_checkpoint["model"])
    checkpoint = CheckpointTarget(path, name="trained")
    result = evaluate(data, [checkpoint], settings)
    truth = _row_truth(data, checkpoint.distribution(data))
    assert truth > BANDIT.true_value(BANDIT.logging_policy)  # the trained policy learned something
    _assert_within_standard_errors(result, truth)


def test_baseline_rules_target_is_deterministic():
    data = BANDIT.sample(300, seed=8)
    rules = BaselineRules(
        rules=(Rule((Condition("user.device", "eq", "mobile"),), "a2"),),
        default="a0",
        known_actions=tuple(f"a{k}" for k in range(BANDIT.n_actions)),
    )
    probabilities = BaselineTarget(rules).distribution(data)
    mobile = (data.contexts["user.device"] == "mobile").to_numpy()
    assert (probabilities[mobile, 2] == 1.0).all()
    assert (probabilities[~mobile, 0] == 1.0).all()
    assert (BaselineTarget().distribution(data)[:, 0] == 1.0).all()


def _result():
    data = BANDIT.sample(1500, seed=9)
    targets = [LoggingPolicy(), UniformRandom(), BANDIT.target(_split_policy(), data, "split")]
    settings = EvaluationSettings(estimators=ESTIMATORS, n_resamples=100, segment_columns=("user.device",), time_bins=3)
    return evaluate(data, targets, settings)


@pytest.mark.parametrize("report_format", ["md", "html"])
def test_report_and_results_written(tmp_path, report_format):
    result = _result()
    report = write_report(result, tmp_path, report_format)
    text = report.read_text()
    assert "Estimates" in text
    assert "split" in text
    assert "Per-segment lift" in text
    for plot in ("estimates.png", "over_time.png", "segments.png"):
        assert (tmp_path / plot).stat().st_size > 1000
    (json_path,) = write_results(result, tmp_path, "json")
    loaded = json.loads(json_path.read_text())
    assert {row["policy"] for row in loaded["estimates"]} == {"logging", "uniform", "split"}
    assert "effective_sample_size" in loaded["diagnostics"]["split"]
    parquet_paths = write_results(result, tmp_path, "parquet")
    estimates = pd.read_parquet(next(p for p in parquet_paths if p.name == "estimates.parquet"))
    assert len(estimates) == 3 * len(ESTIMATORS)


def test_format_table_lists_diagnostics():
    text = format_table(_result())
    assert "ESS" in text
    assert "max w" in text
    assert "zero-support" in text
    assert "difference to logging" in text


def _write_csv(path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    devices = rng.choice(["mobile", "desktop"], size=n)
    chosen = rng.choice(["small", "large"], size=n)
    reward = np.where((devices == "mobile") == (chosen == "large"), rng.random(n) < 0.6, rng.random(n) < 0.2)
    pd.DataFrame(
        {
            "context": [json.dumps({"user": {"device": d}}) for d in devices],
            "actions": [json.dumps(["small", "large"])] * n,
            "chosen_action": chosen,
            "probability": 0.5,
            "reward": reward.astype(float),
            "timestamp": np.arange(n, dtype=float),
        }
    ).to_csv(path, index=False)


def test_evaluate_command_end_to_end(tmp_path, capsys):
    log = tmp_path / "log.csv"
    _write_csv(log)
    table = tmp_path / "large.json"
    table.write_text(json.dumps({"small": [0.0], "large": [1.0]}))
    status = main(
        [
            "evaluate", str(log), "--target", "logging", "--target", "uniform", "--target", f"always_large=fixed:{table}",
            "--estimators", "ips", "snips", "dr", "ips:clip=1.5", "--segment", "user.device",
            "--bootstrap-samples", "200", "--out", str(tmp_path / "out"), "--no-progress",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "always_large" in output
    assert "ips(clip=1.5)" in output
    assert (tmp_path / "out" / "results.json").is_file()
    assert (tmp_path / "out" / "report.md").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--target", "teleport"], "unknown target kind 'teleport'"),
        (["--estimators", "magic"], "unknown estimator 'magic'"),
        (["--segment", "user.age"], "segment column 'user.age' not found"),
    ],
)
def test_evaluate_command_reports_invalid_input(tmp_path, capsys, arguments, message):
    log = tmp_path / "log.csv"
    _write_csv(log)
    status = main(["evaluate", str(log), *arguments, "--out", str(tmp_path / "out"), "--no-progress", "--interval", "normal"])
    assert status == 2
    assert message in capsys.readouterr().err


def test_evaluate_command_empty_log_is_error(tmp_path, capsys):
    log = tmp_path / "empty.csv"
    pd.DataFrame(columns=["context", "actions", "chosen_action", "probability", "reward"]).to_csv(log, index=False)
    status = main(["evaluate", str(log), "--out", str(tmp_path / "out"), "--no-progress"])
    assert status == 2
    assert "empty" in capsys.readouterr().err


def test_evaluate_command_vw_and_baseline_targets(tmp_path, capsys):
    log = tmp_path / "log.csv"
    _write_csv(log, n=300)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("name: greedy\nexploration: {type: epsilon_greedy, epsilon: 0.2}\nvw_args: --l2 1e-6\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - when: [{feature: user.device, op: eq, value: mobile}]\n    action: large\n"
        "default: small\nknown_actions: [small, large]\n"
    )
    status = main(
        [
            "evaluate", str(log), "--target", f"baseline:{rules}", "--target", f"vw:{candidate}",
            "--target", "plain=vw-args:--learning_rate 0.5", "--estimators", "snips", "dr", "--interval", "normal",
            "--out", str(tmp_path / "out"), "--no-progress",
        ]
    )
    output = capsys.readouterr().out
    assert status == 0
    assert "greedy" in output
    assert "plain" in output
    loaded = json.loads((tmp_path / "out" / "results.json").read_text())
    baseline = {row["estimator"]: row["estimate"] for row in loaded["estimates"] if row["policy"] == "baseline"}
    assert baseline["snips"] > 0.45  # the rules pick the better action on both devices (0.6 against 0.2)


def test_settings_reject_duplicate_estimators():
    with pytest.raises(ValueError, match="estimators must differ from each other"):
        EvaluationSettings(estimators=(InverseProbabilityWeighting(), InverseProbabilityWeighting()))


def test_settings_reject_empty_reward_range():
    with pytest.raises(ValueError, match="reward_range must be"):
        EvaluationSettings(reward_range=(1.0, 1.0))
