"""Every Python snippet of README.md and docs/ runs, or is checked against the API.

Fences run through pytest-markdown-docs (in a subprocess, with the stand-ins
of ``tests/docs_snippets/snippets_plugin.py``). Fences marked ``notest``
(``python notest`` in README.md, ``{.python notest}`` in docs/, which
MkDocs renders as plain Python) need weights or a GPU nulltta cannot have in
a test; :func:`check_snippet` imports what they import and binds every call
whose callee it can resolve to that callee's signature, without running it.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PLUGIN_DIR = Path(__file__).parent / "docs_snippets"


def python_fences(path: Path) -> list[tuple[int, set[str], str]]:
    """``(line, options, code)`` of each Python fence of a Markdown file."""
    from markdown_it import MarkdownIt

    fences = []
    for token in MarkdownIt("commonmark").parse(path.read_text()):
        if token.type != "fence":
            continue
        words = token.info.strip().strip("{}").split()
        if not words or words[0].lstrip(".") not in ("py", "python", "python3"):
            continue
        fences.append((token.map[0] + 1, set(words[1:]), token.content))
    return fences


FENCES = [(path, *fence) for path in PAGES for fence in python_fences(path)]
RUNNABLE = [f for f in FENCES if "notest" not in f[2]]
CHECKED = [f for f in FENCES if "notest" in f[2]]


def _fence_id(fence: tuple[Any, ...]) -> str:
    return f"{fence[0].relative_to(ROOT)}:{fence[1]}"


def test_every_runnable_snippet_runs():
    assert len(RUNNABLE) >= 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(ROOT)])}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p"]
    command += ["snippets_plugin", "--markdown-docs", "--markdown-docs-syntax=superfences"]
    command += ["-o", "addopts=", "--rootdir", str(ROOT)]
    pages = sorted({str(f[0]) for f in RUNNABLE})
    result = subprocess.run(
        command + pages, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # Every fence ran: none was skipped or left uncollected.
    assert re.search(rf"\b{len(RUNNABLE)} passed\b", output), output[-2000:]
    assert "skipped" not in output.splitlines()[-1]


# ---------------------------------------------------------------- import and signature checks
class _Instance:
    """What the checker knows of a value: the class it is an instance of."""

    def __init__(self, cls: type) -> None:
        self.cls = cls


def _documented_attributes(cls: type) -> set[str]:
    """Names listed in the ``Attributes`` section of a numpy docstring."""
    doc = inspect.getdoc(cls) or ""
    section = doc.split("Attributes\n----------", 1)
    if len(section) < 2:
        return set()
    body = re.split(r"\n\S[^\n]*\n-{3,}", section[1])[0]
    return set(re.findall(r"^(\w+) ?:", body, flags=re.MULTILINE))


def _returned_class(function: Any) -> type | None:
    try:
        hint = typing.get_type_hints(function).get("return")
    except Exception:  # unresolvable annotations: nothing known
        return None
    return hint if isinstance(hint, type) else None


class _Checker:
    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.known: dict[str, _Instance] = {}
        self.problems: list[str] = []

    def resolve(self, node: ast.AST) -> Any:
        """An object, an :class:`_Instance`, or None when unknown."""
        if isinstance(node, ast.Name):
            return self.known.get(node.id, self.namespace.get(node.id))
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is None:
                return None
            if isinstance(base, _Instance):
                member = inspect.getattr_static(base.cls, node.attr, None)
                if member is None:
                    if node.attr not in _documented_attributes(base.cls):
                        self.problems.append(f"{base.cls.__name__} has no attribute {node.attr!r}")
                    return None
                return getattr(base.cls, node.attr)
            if not hasattr(base, node.attr):
                self.problems.append(f"{getattr(base, '__name__', base)!r} has no {node.attr!r}")
                return None
            return getattr(base, node.attr)
        if isinstance(node, ast.Call):
            return self.call(node)
        for child in ast.iter_child_nodes(node):  # subscripts, operators, literals: look inside
            self.resolve(child)
        return None

    def call(self, node: ast.Call) -> Any:
        callee = self.resolve(node.func)
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            self.resolve(argument)
        if callee is None or isinstance(callee, _Instance) or not callable(callee):
            return None
        self.bind(callee, node)
        self.check_reward_names(callee, node)
        if isinstance(callee, type):
            return _Instance(callee)
        returned = _returned_class(callee)
        return _Instance(returned) if returned is not None else None

    def bind(self, callee: Any, node: ast.Call) -> None:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            return
        try:
            signature = inspect.signature(callee)
        except (TypeError, ValueError):  # builtins without a signature
            return
        args = [None] * len(node.args)
        if inspect.isfunction(callee) and isinstance(node.func, ast.Attribute):
            base = self.resolve(node.func.value)
            if isinstance(base, _Instance):
                args.insert(0, None)  # self
        try:
            signature.bind(*args, **{k.arg: None for k in node.keywords})
        except TypeError as error:
            self.problems.append(
                f"line {node.lineno}: {getattr(callee, '__qualname__', callee)}: {error}"
            )

    def check_reward_names(self, callee: Any, node: ast.Call) -> None:
        from nulltta import NullTextAligner
        from nulltta.rewards import available_rewards, get_reward

        if callee is NullTextAligner:
            position = 1
        elif callee is get_reward:
            position = 0
        else:
            return
        values = [k.value for k in node.keywords if k.arg == "reward"]
        values += node.args[position : position + 1]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for term in value.value.split(","):
                    name = term.split(":")[0].strip().lower()
                    if name not in available_rewards():
                        self.problems.append(f"line {node.lineno}: no reward named {name!r}")

    def run(self, source: str) -> list[str]:
        tree = ast.parse(source)
        for statement in tree.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([statement], []), "<snippet>", "exec"), self.namespace)
                continue
            value = statement.value if isinstance(statement, (ast.Assign, ast.Expr)) else None
            if value is None:
                for node in ast.iter_child_nodes(statement):
                    self.resolve(node)
                continue
            result = self.resolve(value)
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        if isinstance(result, _Instance):
                            self.known[target.id] = result
                        else:
                            self.known.pop(target.id, None)
                            self.namespace.pop(target.id, None)
        return self.problems


def check_snippet(source: str, namespace: dict[str, Any] | None = None) -> list[str]:
    """Problems of a snippet that is not run: bad imports raise, bad calls are listed.

    Imports are executed. Every call whose callee resolves (a name imported or
    assigned in the snippet, attributes of those, methods of instances of
    known classes, following return annotations) is bound to the callee's
    signature; attributes of instances must exist on the class or be listed
    in its docstring's ``Attributes``; reward names given as literals must be
    registered.
    """
    return _Checker(dict(namespace or {})).run(source)


@pytest.mark.parametrize("fence", CHECKED, ids=_fence_id)
def test_snippets_that_need_weights_import_and_call_the_api_correctly(fence):
    path, line, options, code = fence
    assert check_snippet(code) == [], f"{path.name}:{line}"


def test_there_are_snippets_of_both_kinds():
    assert len(CHECKED) >= 3 and len(RUNNABLE) >= 4
    assert {f[0].name for f in FENCES} >= {"README.md", "index.md", "rewards.md"}


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("from nulltta import NullTextAligner\nNullTextAligner(None, rewrd='x')", "rewrd"),
        ("from nulltta import NullTextAligner\nNullTextAligner(None, 'pickscor')", "pickscor"),
        ("from nulltta import NullTextAligner\na = NullTextAligner()\na.fitt('p')", "fitt"),
        ("from nulltta import NullTextAligner\na = NullTextAligner().fit('p')\na.imag_", "imag_"),
        (
            "from nulltta import NullTextAligner\na = NullTextAligner()\na.generate(n=2)",
            "unexpected keyword argument 'n'",
        ),
        ("from nulltta.rewards import get_reward\nget_reward('hpsv3')", "hpsv3"),
        ("import nulltta\nnulltta.NullTextAlignr()", "NullTextAlignr"),
    ],
)
def test_the_checker_finds_wrong_calls(snippet, problem):
    problems = check_snippet(snippet)
    assert any(problem in p for p in problems), problems


def test_the_checker_accepts_the_api_and_fails_on_a_bad_import():
    good = (
        "from nulltta import NullTextAligner\n"
        "a = NullTextAligner(None, reward='pickscore:0.5,hpsv2:0.5', n_max=25, seed=0)\n"
        "a.fit('a fox').image_.save('x.png')\n"
        "a.history_[:, 'reward']\n"
        "more = a.generate(n_images=4, seed=1)\n"
    )
    assert check_snippet(good) == []
    with pytest.raises(ImportError):
        check_snippet("from nulltta import NoSuchThing")
