"""Task taxonomy and the canonical text forms of answers (paper sections 3.3 and 3.7).

This module is the single source of truth for how a ground-truth answer is written as response text,
so the data generator, the SFT ground-truth targets, the scoring parsers and the prompts agree.

Answer conventions (the text inside ``<answer>...</answer>``):

========== ======================================= ==========================================
task_type   item ``answer`` field                   answer text
========== ======================================= ==========================================
mcq         option letter ``"B"``                   ``B``
numeric     number ``3`` or ``2.5``                 ``3`` / ``2.5``
ocr         string ``"CAT"``                        ``CAT``
temporal    ``[start_s, end_s]`` (seconds)          ``[1.0, 3.0]``
spatial     ``[{"t": s, "box": [x1,y1,x2,y2]}]``    ``[x1, y1, x2, y2]`` (one box, 0-1000 normalised)
open        reference text                          free text
========== ======================================= ==========================================

Boxes are in coordinates normalised to 0-1000 of the frame width and height (Qwen-VL convention),
so they are independent of the stored frame resolution.
"""

from __future__ import annotations

from typing import Any

TASK_TYPES: tuple[str, ...] = ("mcq", "numeric", "ocr", "temporal", "spatial", "open")
CLOSED_TASKS: frozenset[str] = frozenset({"mcq", "numeric", "ocr", "temporal", "spatial"})
OPEN_TASKS: frozenset[str] = frozenset({"open"})
OPTION_LETTERS: str = "ABCDEFGHIJKLMN"
RESPONSE_TEMPLATES: tuple[str, ...] = ("answer_only", "think_answer")

TASK_INSTRUCTIONS: dict[str, str] = {
    "mcq": "Answer with the option letter.",
    "numeric": "Answer with a number.",
    "ocr": "Answer with the text.",
    "temporal": "Answer with [start, end] in seconds.",
    "spatial": "Answer with the box [x1, y1, x2, y2] on a 0-1000 scale.",
    "open": "Answer in one sentence.",
}


def is_closed(task_type: str) -> bool:
    """True for GT-verifiable task types (paper section 3.3)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task_type {task_type!r}; valid: {list(TASK_TYPES)}")
    return task_type in CLOSED_TASKS


def format_number(x: float) -> str:
    """Render a number compactly: integers without a decimal point, others with up to 3 decimals.

    >>> format_number(3.0), format_number(2.5), format_number(0.1234)
    ('3', '2.5', '0.123')
    """
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _seconds(x: float) -> str:
    """'1.0', '0.25', '1.5': two decimals at most, one at least."""
    text = f"{float(x):.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def render_answer(task_type: str, answer: Any) -> str:
    """The canonical answer text for a ground-truth ``answer`` of ``task_type``.

    >>> render_answer("temporal", [1, 3.25])
    '[1.0, 3.25]'
    >>> render_answer("spatial", [{"t": 0.0, "box": [100, 200, 300, 400]}])
    '[100, 200, 300, 400]'

    Temporal spans are written with up to two decimals (0.01 s; the generator's frame grid at 4 fps
    is 0.25 s, so ground truth is exact); boxes are integers on the 0-1000 scale.
    For spatial items with several annotated frames, the first frame's box is rendered.

    Raises:
        ValueError: unknown task type.
    """
    if task_type == "mcq":
        return str(answer).strip().upper()
    if task_type == "numeric":
        return format_number(float(answer))
    if task_type in ("ocr", "open"):
        return str(answer).strip()
    if task_type == "temporal":
        s, e = answer
        return f"[{_seconds(s)}, {_seconds(e)}]"
    if task_type == "spatial":
        box = answer[0]["box"] if isinstance(answer[0], dict) else answer
        return "[" + ", ".join(str(int(round(float(v)))) for v in box) + "]"
    raise ValueError(f"unknown task_type {task_type!r}; valid: {list(TASK_TYPES)}")


def render_response(answer_text: str, template: str, think: str = "") -> str:
    """Wrap answer text in the response template (paper section 3.7).

    >>> render_response("B", "answer_only")
    '<answer>B</answer>'
    >>> render_response("B", "think_answer", "the shape is round")
    '<think>the shape is round</think><answer>B</answer>'
    """
    if template == "answer_only":
        return f"<answer>{answer_text}</answer>"
    if template == "think_answer":
        return f"<think>{think}</think><answer>{answer_text}</answer>"
    raise ValueError(f"unknown response template {template!r}; valid: {list(RESPONSE_TEMPLATES)}")


def ground_truth_response(item: dict, template: str) -> str:
    """The ground-truth answer of ``item`` written as a response in ``template``."""
    return render_response(render_answer(item["task_type"], item["answer"]), template)


def build_prompt(item: dict, template: str) -> str:
    """The user text of an item: question, lettered options (MCQ) and the answer instruction.

    >>> build_prompt({"task_type": "mcq", "question": "Which shape?", "options": ["circle", "square"]},
    ...              "answer_only")
    'Which shape?\\nA. circle\\nB. square\\nAnswer with the option letter. Put it in <answer></answer>.'
    """
    lines = [item["question"].strip()]
    for letter, opt in zip(OPTION_LETTERS, item.get("options") or []):
        lines.append(f"{letter}. {opt}")
    wrap = (
        "Put it in <answer></answer>."
        if template == "answer_only"
        else "Think in <think></think>, then put it in <answer></answer>."
    )
    lines.append(f"{TASK_INSTRUCTIONS[item['task_type']]} {wrap}")
    return "\n".join(lines)
