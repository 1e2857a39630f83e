"""Plots a reader can trust at a glance: gaps are labelled with their measured values only, and every trained model
gets its training curves."""

import json

import pytest

pytest.importorskip("matplotlib")

from w2s_align.analysis import plots  # noqa: E402


def _row(gap, conflict, value, mitigation="none"):
    point = {"value": value, "ci_low": value - 0.1, "ci_high": value + 0.1}
    return {"gap": gap, "conflict": conflict, "mitigation": mitigation, "method": "xent", "ds_paper": point}


@pytest.fixture
def drawn(monkeypatch):
    """The figures saved during a test, still open."""
    figures = []
    monkeypatch.setattr("matplotlib.figure.Figure.savefig", lambda self, *args, **kwargs: figures.append(self))
    return figures


def test_one_gap_names_its_students_on_the_axis_and_the_gap_in_its_title(drawn, tmp_path):
    rows = [_row(0.1225, conflict, 0.3 + 0.1 * i) for i, conflict in enumerate(["none", "explicit-0.5", "implicit-1"])]
    rows.append(_row(0.1225, "none", 0.35, mitigation="bootstrap"))
    assert plots.plot_deception_vs_gap(rows, tmp_path / "d.png") is not None
    ax = drawn[0].axes[0]
    names = ["none (xent)", "explicit-0.5 (xent)", "implicit-1 (xent)", "none, bootstrap (xent)"]
    assert [label.get_text() for label in ax.get_xticklabels()] == names  # not one tick for the one gap
    assert ax.get_xlabel().endswith("at the one capability gap 0.122") and ax.get_xlim() == (-0.5, 3.5)


def test_gaps_are_ordered_categories_labelled_by_their_values(drawn, tmp_path):
    rows = [_row(0.167, "none", 0.36), _row(0.035, "none", 0.10), _row(0.045, "none", 0.20)]
    plots.plot_deception_vs_gap(rows, tmp_path / "d.png")
    ax = drawn[0].axes[0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["0.035", "0.045", "0.167"]
    x, y = ax.lines[0].get_data()
    assert list(x) == [0, 1, 2] and list(y) == [0.10, 0.20, 0.36]


def test_training_curves_from_a_saved_log(drawn, tmp_path):
    history = [{"loss": 0.69 - 0.01 * step, "label_agreement": 0.5 + 0.02 * step, "step": step} for step in (10, 20)]
    history.append({"train_loss": 0.68, "step": 20})
    path = plots.plot_training_curves("student", history, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    loss, agreement = drawn[0].axes
    assert loss.get_title() == "loss" and list(loss.lines[0].get_ydata()) == pytest.approx([0.59, 0.49])
    assert agreement.get_title() == "agreement with its training labels"
    assert list(agreement.lines[0].get_xdata()) == [10, 20]
    assert plots.plot_training_curves("none", json.loads("[]"), tmp_path / "none.png") is None


def test_every_student_gets_its_accuracies_and_pgr_with_intervals(drawn, tmp_path):
    def stat(value):
        return {"value": value, "ci_low": value - 0.02, "ci_high": value + 0.03}

    rows = [
        {"label": label, "weak_accuracy": 0.6, "strong_accuracy": 0.7, "student_accuracy": acc,
         "weak_accuracy_ci": stat(0.6), "strong_accuracy_ci": stat(0.7), "student_accuracy_ci": stat(acc),
         "pgr_ci": stat(pgr), "gap_within_noise": noise}
        for label, acc, pgr, noise in (("a (xent)", 0.66, 0.6, False), ("a (window)", 0.64, 0.4, True))
    ]  # fmt: skip
    assert plots.plot_students(rows, tmp_path / "s.png") is not None
    left, right = drawn[0].axes
    assert [label.get_text() for label in left.get_yticklabels()] == ["a (xent)", "a (window)"]
    assert list(left.get_yticks()) == [1, 0]  # the first row on top
    students = [c for c in left.containers if c.lines[0].get_color() == "tab:blue"]
    assert sorted(container.lines[0].get_xdata()[0] for container in students) == [0.64, 0.66]
    (pgr,) = right.containers  # the second student's gap is within noise: no PGR point, a note instead
    assert pgr.lines[0].get_xdata()[0] == 0.6
    assert [text.get_text() for text in right.texts] == ["gap within noise"]


def test_the_knowledge_area_heatmap_explains_its_cells(drawn, tmp_path):
    table = {f"{s}&{w}": {"value": 0.25, "n": 10} for s in ("S_k", "S_uk") for w in ("W_k", "W_uk")}
    assert plots.plot_area_heatmap([{"label": "s <- w (xent)", "table": table}], tmp_path / "h.png") is not None
    panel, colour_bar = drawn[0].axes[0], drawn[0].axes[-1]
    assert panel.get_xlabel() == "weak teacher on the pair" and panel.get_ylabel() == "strong ceiling on the pair"
    assert colour_bar.get_ylabel() == "student error rate"  # what the colours mean, on their scale
    assert "W_k / W_uk, the pairs the weak teacher gets right / wrong" in drawn[0].get_suptitle()
