import pandas as pd
import pytest

from rdpt_core.behaviours import behaviour_mix, tag_actions, tag_behaviour


@pytest.mark.parametrize("text, tag", [
    ("So 3 + 4 = 7.", "execution"),
    (" Wait, that doesn't look right.", "reflection"),
    (" Let me check the sum again.", "reflection"),
    (" Alternatively, we can count backwards.", "transition"),
    (" Hmm, instead let's try factoring.", "transition"),  # transition wins over reflection
    (" The checker is a person.", "execution"),  # word boundary: "checker" is not "check"
])
def test_keyword_rules(text, tag):
    assert tag_behaviour(text) == tag


def test_mix_per_class_skips_special_markers():
    table = pd.DataFrame({
        "text": ["<think>", "x = 2.", " Wait, no.", " Alternatively, y.", " So z."],
        "kind": ["special", "sentence", "sentence", "sentence", "sentence"],
        "cls": ["Teacher", "Teacher", "Teacher", "Boosted", "Boosted"],
    })
    assert tag_actions(table).tolist() == [None, "execution", "reflection", "transition", "execution"]
    mix = behaviour_mix(table)
    assert mix.loc["Teacher", ["execution", "reflection", "transition", "n"]].tolist() == [0.5, 0.5, 0.0, 2]
    assert mix.loc["Boosted", ["execution", "transition", "n"]].tolist() == [0.5, 0.5, 2]
