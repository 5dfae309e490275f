"""Issue 23 item 3: `--device cuda` must not crash where no CPU test can see it. A static check
over the reproductions and the analysis code for the three patterns that crashed on a GPU only:

1. a `torch.Generator()` without a device (a CPU generator drawing for a GPU tensor raises);
   a generator meant for the CPU says so (`device="cpu"`);
2. `.numpy()` of a tensor not first brought to the host with `.cpu()`;
3. a hand-built construction (from `icsim.constructions`) used without being moved to a device
   (`model.to(batch.xs.dtype)` leaves its weights on the CPU while the batch is on the GPU).

It fails on the code before issue 23 (vonoswald2023.py: 2 and 3; fu2024.py: 2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "icsim"
CHECKED = ("experiments", "analysis")


def _chain_has_cpu(node: ast.AST) -> bool:
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "cpu" or (
                node.func.attr == "to" and any("cpu" in ast.unparse(a) for a in node.args)
            ):
                return True
            node = node.func.value
        elif isinstance(node, ast.Call):
            return False
        else:
            node = node.value
    return False


def _construction_builders(tree: ast.Module) -> set[str]:
    names = {"build"}  # icsim.constructions.build(...)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "icsim.constructions"
        ):
            names |= {a.asname or a.name for a in node.names}
    return names


def _is_construction_call(call: ast.AST, builders: set[str]) -> bool:
    if not isinstance(call, ast.Call):
        return False
    f = call.func
    if isinstance(f, ast.Attribute):  # icsim.constructions.build / constructions.build
        return f.attr == "build" and "constructions" in ast.unparse(f.value)
    return isinstance(f, ast.Name) and f.id in builders and f.id != "build"


def hazards_in(source: str, name: str = "<src>") -> list[str]:
    tree = ast.parse(source)
    found = []
    builders = _construction_builders(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        text = ast.unparse(f)
        if text in ("torch.Generator", "Generator"):
            if not node.args and not any(k.arg == "device" for k in node.keywords):
                found.append(f"{name}:{node.lineno}: torch.Generator() without a device")
        if isinstance(f, ast.Attribute) and f.attr == "numpy" and not _chain_has_cpu(f.value):
            found.append(f"{name}:{node.lineno}: .numpy() without .cpu() first")
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        models = {}
        for node in ast.walk(fn):
            # a construction is built as `model, fmt = builder(...)` (its checks and error
            # tables, also in icsim.constructions, return numbers and run on the CPU)
            if isinstance(node, ast.Assign) and _is_construction_call(node.value, builders):
                target = node.targets[0]
                if isinstance(target, ast.Tuple) and isinstance(target.elts[0], ast.Name):
                    models[target.elts[0].id] = node.lineno
        for model, line in models.items():
            moved = any(
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "to"
                and ast.unparse(n.func.value) == model
                and any("device" in ast.unparse(a) for a in [*n.args, *n.keywords])
                for n in ast.walk(fn)
            )
            if not moved:
                found.append(f"{name}:{line}: construction {model!r} never moved to a device")
    return found


def hazards(root: Path = SRC) -> list[str]:
    out = []
    for package in CHECKED:
        for path in sorted((root / package).glob("*.py")):
            out += hazards_in(path.read_text(), f"{package}/{path.name}")
    return out


def test_no_device_hazards_in_reproductions_and_analysis():
    assert hazards() == []


@pytest.mark.parametrize(
    "snippet",
    [
        "g = torch.Generator().manual_seed(0)",
        "x = t.double().numpy()",
        "x = m['s'][1:].double().numpy()",
        "def f(batch):\n    m, fmt = icsim.constructions.build('gd', dim=2)\n"
        "    return fmt.run(m.to(batch.xs.dtype), batch)",
        "from icsim.constructions.newton import newton\ndef f(b):\n    m, fmt = newton(dim=2)\n"
        "    return fmt.run(m, b)",
    ],
)
def test_the_check_catches_each_pattern(snippet):
    assert hazards_in(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "g = torch.Generator(device=device)",
        "g = torch.Generator(device='cpu')",
        "x = t.double().cpu().numpy()",
        "x = t.detach().to('cpu').numpy()",
        "def f(batch):\n    m, fmt = icsim.constructions.build('gd', dim=2)\n"
        "    return fmt.run(m.to(batch.xs.device, batch.xs.dtype), batch)",
    ],
)
def test_the_check_accepts_device_safe_code(snippet):
    assert hazards_in(snippet) == []
