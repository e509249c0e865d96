"""docs/framework-differences.md is an index: every row's links lead somewhere real --
its test, the `crossloop explain` phase, the quoted exported code, the tutorial section."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from crossloop import explain, export, nn

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "framework-differences.md").read_text(encoding="utf-8")
TESTS = ROOT / "tests" / "test_framework_differences.py"
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
# lenet5, and models with the layers lenet5 lacks: padding at stride 2, dropout; norms;
# embeddings and causal attention (tiny-gpt)
EXPORTED = "".join(
    source(spec) for source in (export.torch_source, export.keras_source) for spec in (
        nn.lenet5(), nn.tiny_gpt(),
        nn.Sequential((nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Dropout(0.5), nn.Flatten(),
                       nn.Linear(4 * 14 * 14, 10)), name="strided"),
        nn.Sequential((nn.Linear(6, 4), nn.BatchNorm1d(4), nn.LayerNorm(4), nn.GELU()),
                      input_shape=(6,), name="norms")))
WORDS = " ".join(re.sub(r"\n\s*# ", " ", EXPORTED).split())  # wrapped comments read as one line


def rows() -> dict[int, list[str]]:
    """Row number -> its cells, for every row of the differences table."""
    found = {}
    for line in PAGE.splitlines():
        match = re.match(r"\| (\d+) \| (.*) \|$", line)
        if match:
            found[int(match.group(1))] = [cell.strip() for cell in match.group(2).split(" | ")]
    return found


def test_rows_are_numbered_and_each_test_has_exactly_one_row():
    table = rows()
    assert list(table) == list(range(1, len(table) + 1))
    tree = ast.parse(TESTS.read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)
               and n.name.startswith("test_")}
    links = [re.fullmatch(r"\[`(\w+)`\]\(\.\./tests/(test_\w+)\.py\)", cells[-2]).groups()
             for cells in table.values()]
    linked = [name for name, module in links if module == TESTS.stem]
    assert sorted(linked) == sorted(defined)
    for name, module in links:  # a row whose test lives elsewhere (data parallelism)
        assert f"def {name}(" in (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")


def test_every_see_it_link_resolves():
    headings = set(re.findall(r"^## (\d+)\.", TUTORIAL, re.M))
    for number, cells in rows().items():
        see = cells[-1]
        explained = re.findall(r"explain: `([^`]*)`", see)
        quoted = re.findall(r'export: "([^"]*)"', see)
        sections = re.findall(r"tutorial §(\d+)", see)
        examples = re.findall(r"(?:porting|example): \[[^]]*\]\(\.\./(examples/[\w/]+\.py)\)", see)
        assert explained or quoted or sections or examples, f"row {number} links nowhere"
        for path in examples:
            assert (ROOT / path).is_file(), f"row {number}: {path} does not exist"
        for args in explained:
            phase = re.search(r"--phase (\w+)", args).group(1)
            optimizer = re.search(r"--optimizer (\w+)", args)
            shown = explain.phases(phase, optimizer.group(1) if optimizer else "adam")
            assert explain.render_markdown(shown), f"row {number}: {args}"
        for quote in quoted:
            assert quote in WORDS, f"row {number}: {quote!r} is not in the exported code"
        for section in sections:
            assert section in headings, f"row {number}: the tutorial has no section {section}"
