"""The judge's rubric prompt and the grade parser on messy replies."""

import pytest

from maritime_slm.evaluate.judge import JudgeGrade, judge_messages, parse_grade, template_text


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("CORRECT", "CORRECT"),
        ("INCORRECT", "INCORRECT"),
        ("**CORRECT**", "CORRECT"),
        ("**INCORRECT**", "INCORRECT"),
        ("`INCORRECT`", "INCORRECT"),
        ("Incorrect.", "INCORRECT"),
        ("correct", "CORRECT"),
        ("  Correct!\n", "CORRECT"),
        ("The answer is correct", "CORRECT"),
        ("The answer is correct.", "CORRECT"),
        ("NOT correct", "INCORRECT"),
        ("The candidate is not correct.", "INCORRECT"),
        ("The answer is not quite correct.", "INCORRECT"),
        ("It isn't correct", "INCORRECT"),
        ("Partially correct", "INCORRECT"),
        ("Wrong.", "INCORRECT"),
        ("The candidate's answer is incorrect. The correct answer is 5.2 nm.", "INCORRECT"),
        ("INCORRECT\n\nThe correct value is 12 kn, not 15 kn.", "INCORRECT"),
        ("The candidate says 5 but it seems correct... Verdict: INCORRECT", "INCORRECT"),
        ("Grade: **correct**", "CORRECT"),
        ("Verdict: CORRECT? Checking the unit again... Verdict: INCORRECT", "INCORRECT"),  # the last verdict
        ("## Verdict\nCORRECT", "CORRECT"),
        ("", None),
        (None, None),
        ("   ", None),
        ("asdf qwerty 12345 ###", None),
        ("The correct answer is 5.", None),  # names the correct answer; gives no verdict
        ("It is partly right and partly wrong, hard to say; correct in spirit", None),  # contradicts itself
    ],
)
def test_parse_grade(text, grade):
    assert parse_grade(text) == grade


def test_unparseable_counts_as_incorrect_and_failures_as_unjudged():
    assert JudgeGrade("CORRECT", "ok").judged_correct is True
    assert JudgeGrade("INCORRECT", "ok").judged_correct is False
    assert JudgeGrade(None, "unparseable", "???").judged_correct is False
    assert JudgeGrade(None, "failed:http_error").judged_correct is None
    assert JudgeGrade(None, "not_answered").judged_correct is None


def test_judge_prompt_from_template():
    text = template_text("judge")
    for field in ("$question", "$reference_final", "$reference", "$candidate", "CORRECT or INCORRECT"):
        assert field in text
    messages = judge_messages(
        "How many vessels?", "Counting rows.\nFinal answer: 5", "5", "I count 4.\nFinal answer: 4"
    )
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert "How many vessels?" in content and "Reference final answer: 5" in content
    assert "Final answer: 4" in content and "$" not in content
    long = judge_messages("q", "r", "1", "x" * 10_000)[0]["content"]
    assert "reply cut for length" in long and len(long) < 7000
    assert "(empty reply)" in judge_messages("q", "r", "1", "  ")[0]["content"]
