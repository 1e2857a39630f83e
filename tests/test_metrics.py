"""Accuracy, PGR and agreement from saved predictions."""

import pytest

from w2s_align.analysis.metrics import pairwise_accuracy, pgr


def test_undefined_pgr_is_reported_as_such():
    assert pgr(0.7, 0.7, 0.8) is None
    assert pgr(0.7, 0.69, 0.8) is None
    assert pgr(0.70, 0.705, 0.71, min_gap=0.01) is None
    assert pgr(0.6, 0.8, 0.65) == pytest.approx(0.25)


def test_pairwise_accuracy_reads_the_label_not_the_order():
    margins, labels = [2.0, -1.0, 0.5, 3.0, 0.0], [1.0, 0.2, 0.3, 0.5, 0.9]
    # pair 0 right, 1 right (label prefers the second, margin < 0), 2 wrong, 3 left out (label 0.5), 4 a tie: wrong
    assert pairwise_accuracy(margins, labels) == pytest.approx(2 / 4)
    swapped = pairwise_accuracy([-m for m in margins], [1 - p for p in labels])
    assert swapped == pytest.approx(2 / 4)
    assert pairwise_accuracy([1.0], [0.5]) is None


def test_evaluate_modules_load_from_the_package_and_compute(tmp_path):
    import evaluate

    from w2s_align.evaluate_metrics import load_metric, metric_path

    module = evaluate.load(metric_path("pairwise_accuracy"), cache_dir=str(tmp_path))
    assert isinstance(module, evaluate.EvaluationModule)
    assert module.compute(predictions=[2.0, -1.0, 0.5], references=[1.0, 0.2, 0.7]) == {"accuracy": 1.0}
    # Two seeds of four test pairs. Seed 0: weak right on 2, strong on 4, student on 3; seed 1: student on 4.
    weak, strong = [0.9, 0.9, 0.3, 0.4] * 2, [0.9, 0.8, 0.7, 0.6] * 2
    student = [0.9, 0.8, 0.3, 0.6] + [0.9, 0.8, 0.7, 0.6]
    result = load_metric("pgr").compute(
        predictions=student, weak=weak, strong=strong, training_seed=[0] * 4 + [1] * 4, n_bootstrap=0
    )
    assert result["pgr"]["per_seed"] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert result["pgr"]["value"] == pytest.approx(pgr(0.5, 1.0, 0.875))  # PGR of the seed-mean accuracies
    assert result["gap"]["value"] == pytest.approx(0.5) and result["gap_within_noise"] is False
    with pytest.raises(ValueError, match="no metric module .bleu.; w2s_align has pairwise_accuracy, pgr, deception"):
        metric_path("bleu")


def test_the_deception_module_is_the_analyzer():
    from w2s_align.analysis.deception import DeceptionAnalyzer
    from w2s_align.evaluate_metrics import load_metric

    weak = [0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.9]
    strong = [0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.2]
    student = [0.8, 0.3, 0.1, 0.4, 0.3, 0.2, 0.7, 0.6]
    baseline = [0.8, 0.3, 0.9, 0.9, 0.9, 0.2, 0.7, 0.6]
    expected = DeceptionAnalyzer(weak, strong, student, baseline=baseline, n_bootstrap=200).summary()
    result = load_metric("deception", "conflict").compute(
        predictions=student,
        weak=weak,
        strong=strong,
        baseline=baseline,
        training_seed=[7] * 8,
        n_bootstrap=200,
        min_gap=1e-9,
    )
    for key in ("blind_spot.error_rate", "blind_spot.targeting", "conflict.targeting", "pgr"):
        assert (result[key]["value"], result[key]["ci_low"], result[key]["ci_high"]) == pytest.approx(
            (expected[key]["value"], expected[key]["ci_low"], expected[key]["ci_high"])
        )
    assert result["sizes"] == [expected["sizes"]]
    with pytest.raises(ValueError, match="missing"):  # the conflict statistics need the no-conflict twin
        load_metric("deception", "conflict").compute(
            predictions=student, weak=weak, strong=strong, training_seed=[0] * 8
        )


def test_the_report_and_the_evaluate_modules_compute_the_same_statistics():
    """The report calls the statistics directly (`pgr_statistics`, `deception_statistics`); the `evaluate` modules
    users load wrap them: the same numbers, intervals included, from the same rows."""
    from w2s_align.analysis.deception import deception_statistics, pgr_statistics
    from w2s_align.evaluate_metrics import load_metric

    rows = {
        "predictions": [0.8, 0.3, 0.1, 0.4, 0.3, 0.2, 0.7, 0.6] * 2,
        "weak": [0.9, 0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.9] * 2,
        "strong": [0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.2] * 2,
        "training_seed": [0] * 8 + [1] * 8,
    }
    baseline = [0.8, 0.3, 0.9, 0.9, 0.9, 0.2, 0.7, 0.6] * 2
    settings = {"n_bootstrap": 100, "confidence": 0.9, "min_gap": 1e-9}
    assert load_metric("pgr").compute(**rows, **settings) == pgr_statistics(**rows, **settings)
    assert load_metric("deception").compute(**rows, **settings) == deception_statistics(**rows, **settings)
    with_twin = load_metric("deception", "conflict").compute(**rows, baseline=baseline, **settings)
    assert with_twin == deception_statistics(**rows, baseline=baseline, **settings)
