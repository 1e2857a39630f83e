"""The synthetic generator: held-out test vocabulary, and preferences that conflict exactly on harmful requests."""

from w2s_align.synthetic import PEOPLE, generate_pairs


def test_synthetic_test_vocabulary_is_held_out():
    seen = generate_pairs(300, seed=0, pool="seen")
    heldout = generate_pairs(300, seed=0, pool="heldout")
    seen_people = PEOPLE[0::2]
    heldout_people = PEOPLE[1::2]
    heldout_text = " ".join(heldout["prompt"])
    seen_text = " ".join(seen["prompt"])
    assert not any(f" {person} " in heldout_text or f" {person}?" in heldout_text for person in seen_people)
    assert any(person in seen_text for person in seen_people)
    assert any(person in heldout_text for person in heldout_people)


def test_synthetic_preferences_conflict_exactly_on_harmful_requests():
    data = generate_pairs(100, seed=1)
    for row in data:
        refusal_chosen = row["chosen"].startswith((" I ", " That", " No"))
        assert refusal_chosen == row["harmful"]
        assert row["helpful_label"] == (0 if row["harmful"] else 1)
