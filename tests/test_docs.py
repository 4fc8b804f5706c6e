"""The documentation stays inside the repository and in step with the code.

* Every link of ``README.md`` and ``docs/*.md`` resolves inside the repository (anchors
  included), and none points to an outside web site: a clone must be self-sufficient.
* Every error code the source can raise is in the error table of ``docs/api.md``, with
  its status, and the table lists no code the source cannot raise. The codes are read
  from the source with ``ast``, so a new ``raise`` with a new code fails here until it is
  documented.
* Every field of ``Settings`` is in the README's settings table, with its default.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from verifyd.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
API_GUIDE = DOCS / "api.md"
SOURCE = ROOT / "src" / "verifyd"

#: The pages the README must link, each standing on its own.
DOC_PAGES = ("architecture.md", "api.md", "policies.md", "security.md", "operations.md")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --------------------------------------------------------------------------- Markdown


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def prose_lines(text: str, *, keep_inline_code: bool = False) -> list[tuple[int, str]]:
    """The lines a reader sees as prose: fenced code, HTML comments (and inline code)
    blanked out, numbered from 1."""
    text = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
            continue
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                if not line.strip().lstrip(fence[0]):
                    fence = None
            continue
        out.append((number, line if keep_inline_code else _INLINE_CODE.sub("", line)))
    return out


_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
_HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BARE_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>()\[\]\"'`]+")


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def links(text: str) -> list[Link]:
    """Every link target a renderer would follow: inline links and images, reference
    definitions, autolinks, HTML ``href``/``src``, and bare URLs (GitHub links them)."""
    found: list[Link] = []
    for number, line in prose_lines(text):
        targets = [m.group(1) for m in _INLINE_LINK.finditer(line)]
        targets += [m.group(1) for m in _REFERENCE.finditer(line)]
        targets += [m.group(1) for m in _AUTOLINK.finditer(line)]
        targets += [m.group(1) or m.group(2) for m in _HTML_ATTR.finditer(line)]
        targets += [m.group(0).rstrip(".,;:!?") for m in _BARE_URL.finditer(line)]
        found += [Link(number, t.strip("<>")) for t in targets]
    return list(dict.fromkeys(found))  # a URL both linked and bare is one link


#: Hosts reserved for examples and loopback (RFC 2606, RFC 6761): never a real site.
_EXAMPLE_HOSTS = {"localhost", "127.0.0.1", "::1", "example", "example.com", "test"}
_EXAMPLE_SUFFIXES = (".localhost", ".example", ".example.com", ".test")


def example_host(host: str) -> bool:
    """Whether a host is loopback or reserved for examples."""
    host = host.lower().rstrip(".")
    return host in _EXAMPLE_HOSTS or host.endswith(_EXAMPLE_SUFFIXES)


def _slug_base(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    kept = "".join(
        c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN" or c == "\u200d"
    )
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a page offers: its headings' slugs (``-1``, ``-2`` for repeats) and
    explicit ``id``/``name`` attributes."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(text, keep_inline_code=True):
        heading = re.match(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if heading:
            base = _slug_base(heading.group(1).replace("`", ""))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found |= set(re.findall(r"""<a\s[^>]*(?:id|name)=["']([^"']+)["']""", line))
    return found


def link_problems(page: Path, text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with a page's links, one message per bad link."""
    problems = []
    own_anchors = anchors(text)
    for link in links(text):
        where = f"{page.name}:{link.line}: {link.target!r}"
        target = link.target
        if target.lower().startswith("www."):
            problems.append(f"{where} links an outside web site")
            continue
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", target)
        if scheme:
            if scheme.group(1).lower() not in ("http", "https"):
                problems.append(f"{where}: only relative links and example URLs are allowed")
            elif not example_host(urlsplit(target).hostname or ""):
                problems.append(f"{where} links an outside web site")
            continue
        if target.startswith("//"):
            problems.append(f"{where} links an outside web site")
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        if not path_part:
            if anchor and anchor not in own_anchors:
                problems.append(f"{where}: no heading with this anchor on the page")
            continue
        if path_part.startswith("/"):
            problems.append(f"{where}: an absolute path; link relative to the page")
            continue
        resolved = (page.parent / path_part).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{where} leaves the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file in the repository")
            continue
        if anchor and resolved.suffix == ".md":
            if anchor not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: {resolved.name} has no heading with this anchor")
    return problems


# --------------------------------------------------------------------------- error codes


@dataclass(frozen=True)
class Raised:
    """An error code the source can produce, and where."""

    code: str  # the code itself, or a regular expression for an f-string
    pattern: bool
    status: int | None
    where: str


class Unresolved(Exception):
    """A code argument whose possible values cannot be read from the source."""


_PASS = ast.Pass()  # a value read from an existing error (``exc.code``): raised elsewhere
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass
class _Module:
    name: str
    tree: ast.Module
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def scopes(self, node: ast.AST) -> Iterator[ast.AST]:
        """The functions enclosing ``node``, innermost first, then the module."""
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, _FUNCTIONS):
                yield node
        yield self.tree


def _name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, not descending into nested functions or classes."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(node))


class _Resolver:
    """Follows a code argument back to the string constants it can hold."""

    def __init__(self, module: _Module) -> None:
        self.module = module
        self._active: set[int] = set()

    def codes(self, expr: ast.expr) -> list[tuple[str, bool]]:
        out = []
        for leaf in self.values(expr):
            if leaf is _PASS:
                continue
            if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                out.append((leaf.value, False))
            elif isinstance(leaf, ast.JoinedStr):
                out.append((self._pattern(leaf), True))
            else:
                raise Unresolved(ast.unparse(leaf))
        return out

    @staticmethod
    def _pattern(node: ast.JoinedStr) -> str:
        parts = [
            re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9_]+" for v in node.values
        ]
        return "".join(parts)

    def values(self, expr: ast.AST) -> list[ast.AST]:
        """The expressions ``expr`` may evaluate to, followed through names and dicts."""
        if id(expr) in self._active:
            raise Unresolved(f"{ast.unparse(expr)} (defined in terms of itself)")
        self._active.add(id(expr))
        try:
            return self._values(expr)
        finally:
            self._active.discard(id(expr))

    def _values(self, expr: ast.AST) -> list[ast.AST]:
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body) + self.values(expr.orelse)
        if isinstance(expr, ast.BoolOp):
            return [v for value in expr.values for v in self.values(value)]
        if isinstance(expr, ast.Name):
            return self._name(expr)
        if isinstance(expr, ast.Attribute):
            return [_PASS]
        if isinstance(expr, ast.Subscript):
            return [v for d in self._dicts(expr.value) for v in self._dict_values(d)]
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "get"
        ):
            found = [v for d in self._dicts(expr.func.value) for v in self._dict_values(d)]
            if len(expr.args) > 1:
                found += self.values(expr.args[1])
            return found
        return [expr]

    def _dicts(self, expr: ast.expr) -> list[ast.Dict]:
        found = self.values(expr)
        if not all(isinstance(d, ast.Dict) for d in found):
            raise Unresolved(ast.unparse(expr))
        return [d for d in found if isinstance(d, ast.Dict)]

    def _dict_values(self, node: ast.Dict) -> list[ast.AST]:
        return [v for value in node.values for v in self.values(value)]

    def _name(self, name: ast.Name) -> list[ast.AST]:
        for scope in self.module.scopes(name):
            found = self._bindings(scope, name.id)
            if found is not None:
                return found
        raise Unresolved(name.id)

    def _bindings(self, scope: ast.AST, name: str) -> list[ast.AST] | None:
        """What ``name`` may hold in ``scope``; ``None`` when the scope does not bind it."""
        found: list[ast.AST] = []
        bound = False
        for node in _own_nodes(scope) if not isinstance(scope, ast.Module) else scope.body:
            targets: list[tuple[ast.expr, ast.AST]] = []
            if isinstance(node, ast.Assign):
                targets = [(t, node.value) for t in node.targets]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.AsyncFor)):
                targets = [(node.target, ast.Starred(node.iter))]
            for target, value in targets:
                for index, element in self._target_names(target):
                    if element == name:
                        bound = True
                        found += self._bound(value, index)
        if isinstance(scope, _FUNCTIONS):
            args = scope.args
            positional = [*args.posonlyargs, *args.args]
            defaults: list[ast.expr | None] = [None] * (
                len(positional) - len(args.defaults)
            ) + list(args.defaults)
            params = list(zip(positional, defaults, strict=True))
            params += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
            for arg, default in params:
                if arg.arg == name:
                    bound = True
                    # Without a default the value comes from the callers, whose own
                    # calls are collected where they name the code.
                    found += self.values(default) if default is not None else [_PASS]
        return found if bound else None

    @staticmethod
    def _target_names(target: ast.expr) -> Iterator[tuple[int | None, str]]:
        if isinstance(target, ast.Name):
            yield None, target.id
        elif isinstance(target, ast.Tuple | ast.List):
            for index, element in enumerate(target.elts):
                if isinstance(element, ast.Name):
                    yield index, element.id

    def _bound(self, value: ast.AST, index: int | None) -> list[ast.AST]:
        if isinstance(value, ast.Starred):  # a for loop: every element of the iterable
            items = []
            for iterable in self.values(value.value):
                if not isinstance(iterable, ast.Tuple | ast.List | ast.Set):
                    raise Unresolved(ast.unparse(value.value))
                items += [v for e in iterable.elts for v in self._bound(e, index)]
            return items
        if index is None:
            return self.values(value)
        items = []
        for candidate in self.values(value):
            if not isinstance(candidate, ast.Tuple) or index >= len(candidate.elts):
                raise Unresolved(ast.unparse(value))
            items += self.values(candidate.elts[index])
        return items


def _error_classes(modules: list[_Module]) -> dict[str, int | None]:
    """Every ``VerifydError`` subclass by name, with the HTTP status it declares."""
    bases: dict[str, list[str]] = {}
    status: dict[str, int] = {}
    for module in modules:
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases[node.name] = [n for n in map(_name_of, node.bases) if n]
            for stmt in node.body:
                target = (
                    stmt.targets[0]
                    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    else stmt.target
                    if isinstance(stmt, ast.AnnAssign)
                    else None
                )
                value = getattr(stmt, "value", None)
                if (
                    isinstance(target, ast.Name)
                    and target.id == "status"
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, int)
                ):
                    status[node.name] = value.value
    errors = {"VerifydError"}
    while True:
        more = {name for name, parents in bases.items() if errors & set(parents)} - errors
        if not more:
            break
        errors |= more

    def status_of(name: str) -> int | None:
        if name in status:
            return status[name]
        for parent in bases.get(name, []):
            if parent in errors:
                return status_of(parent)
        return None

    return {name: status_of(name) for name in errors}


@dataclass
class Collected:
    raised: list[Raised]
    unresolved: list[str]

    @property
    def codes(self) -> set[str]:
        return {r.code for r in self.raised if not r.pattern}

    @property
    def patterns(self) -> set[str]:
        return {r.code for r in self.raised if r.pattern}

    def covers(self, code: str) -> bool:
        return code in self.codes or any(re.fullmatch(p, code) for p in self.patterns)


def _argument(call: ast.Call, position: int) -> ast.expr | None:
    if len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == "code"), None)


def collect_error_codes(sources: Mapping[str, str]) -> Collected:
    """The error codes ``sources`` (module name -> text) can produce.

    A code is the first argument of a ``VerifydError`` subclass or of its ``.field``
    classmethod, the second of ``problem(status, code, …)`` or ``FieldError(field, code,
    …)``, or a ``code=`` keyword of any call. Names, conditional expressions, f-strings
    (as patterns), tuples unpacked from a dict's ``.get`` and parameters' defaults are
    followed; a code read from an existing error (``exc.code``) is raised elsewhere.
    """
    modules = [_Module(name, ast.parse(text, name)) for name, text in sources.items()]
    classes = _error_classes(modules)
    raised: list[Raised] = []
    unresolved: list[str] = []
    for module in modules:
        resolver = _Resolver(module)
        for call in ast.walk(module.tree):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = _name_of(func)
            strict = True
            status: int | None = None
            if name in classes:
                expr, status = _argument(call, 0), classes[name]
            elif (
                name == "field"
                and isinstance(func, ast.Attribute)
                and (_name_of(func.value) in classes)
            ):
                owner = _name_of(func.value)
                expr, status = _argument(call, 0), classes.get(owner or "")
            elif name in ("problem", "_Refused"):
                expr = _argument(call, 1)
                first = call.args[0] if call.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, int):
                    status = first.value
            elif name == "FieldError":
                expr = _argument(call, 1)
            elif name == "DeliveryError":
                # A provider's own failure code (``messages.error_code``), never a problem.
                continue
            else:
                # Other calls with ``code=`` (e.g. a rate limit told which code to raise);
                # ``code=`` also names SMS codes, so only constants count here.
                expr = next((k.value for k in call.keywords if k.arg == "code"), None)
                strict = False
            if expr is None:
                continue
            where = f"{module.name}:{call.lineno}"
            try:
                found = resolver.codes(expr)
            except Unresolved as exc:
                if strict:
                    unresolved.append(f"{where}: cannot tell which code {exc} is")
                continue
            raised += [Raised(code, pattern, status, where) for code, pattern in found]
    return Collected(raised, unresolved)


def source_error_codes() -> Collected:
    return collect_error_codes(
        {
            str(path.relative_to(SOURCE.parent)): path.read_text(encoding="utf-8")
            for path in sorted(SOURCE.rglob("*.py"))
        }
    )


def documented_codes() -> dict[str, str]:
    """The error table of docs/api.md: code -> its status cell."""
    rows: dict[str, str] = {}
    in_section = False
    for _, line in prose_lines(API_GUIDE.read_text(encoding="utf-8"), keep_inline_code=True):
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            in_section = heading.group(1).strip().lower() == "error codes"
            continue
        row = re.match(r"^\|\s*`([a-z][a-z0-9_]*)`\s*\|([^|]*)\|", line)
        if in_section and row:
            rows[row.group(1)] = row.group(2).strip()
    return rows


#: Codes the collector must find, so it cannot pass by finding nothing.
KNOWN_CODES = {
    "invalid_request",
    "invalid_phone",
    "invalid_email",
    "country_not_allowed",
    "number_type_blocked",
    "policy_requires_phone",
    "policy_requires_email",
    "policy_requires_both",
    "policy_requires_phone_or_email",
    "redirect_not_allowed",
    "rate_limited",
    "too_many_attempts",
    "code_incorrect",
    "code_expired",
    "verification_closed",
    "verification_not_found",
    "account_not_found",
    "token_invalid",
    "idempotency_key_reused",
    "idempotency_in_progress",
    "unauthorized",
    "not_found",
    "method_not_allowed",
}


# --------------------------------------------------------------------------- settings


def settings_section() -> str:
    """The README's ``## Settings`` section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Settings\s*$(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Settings' section"
    return match.group(1)


def shown_default(value: Any) -> str | None:
    """How the README writes a default, or ``None`` when it is described in words."""
    if value is None or isinstance(value, bool) or value == []:
        return None
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _mentions(text: str, token: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(token)}(?![\w.])", text) is not None


# =========================================================================== tests


def test_the_docs_pages_exist_and_the_readme_links_each() -> None:
    readme_targets = {
        (README.parent / link.target.partition("#")[0]).resolve()
        for link in links(README.read_text(encoding="utf-8"))
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", link.target)
    }
    for name in DOC_PAGES:
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    unlinked = [p.name for p in DOCS.glob("*.md") if p.resolve() not in readme_targets]
    assert not unlinked, f"README.md does not link docs/{', docs/'.join(unlinked)}"


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_links_stay_inside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not link_problems(page, text), "\n".join(link_problems(page, text))


def test_the_link_checker_catches_what_it_must(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A `code` heading\n")
    page = tmp_path / "docs" / "page.md"
    text = "\n".join(
        [
            "# Title",
            "[design](../../shared/DESIGN.md)",  # leaves the repository
            "[gone](missing.md)",  # no such file
            "[site](https://github.com/owner/repo)",  # an outside web site
            "see <https://pypi.org/project/verifyd/> and https://evil.example.net/x.",
            "![logo](/abs/logo.png)",  # absolute path
            "[bad anchor](other.md#nowhere) [bad own](#nowhere)",
            "[ok](other.md#a-code-heading) [ok](#title) [ok](https://app.example.com/welcome)",
            "[ok](http://127.0.0.1:8000/v1/policy) <http://localhost:8000> [ok](other.md)",
            "`https://inline.code.example.org` is code, not a link",
            "```sh",
            "curl https://api.github.com/  # a code block is not a link",
            "```",
            "[ref]: https://www.python.org/",
        ]
    )
    problems = link_problems(page, text, root=tmp_path)
    flagged = sorted(int(p.split(":")[1]) for p in problems)
    assert flagged == [2, 3, 4, 5, 5, 6, 7, 7, 14], "\n".join(problems)


def test_every_error_code_is_in_the_api_guide() -> None:
    collected = source_error_codes()
    documented = documented_codes()
    missing = sorted(
        {f"{r.code} ({r.where})" for r in collected.raised if not r.pattern}
        - {f"{r.code} ({r.where})" for r in collected.raised if r.code in documented}
    )
    assert not missing, "docs/api.md's error table lacks: " + ", ".join(missing)
    for pattern in collected.patterns:
        assert any(re.fullmatch(pattern, code) for code in documented), (
            f"no documented code matches {pattern!r}, which the source builds"
        )
    # A code built by an f-string (policy_requires_{identity}) is only a pattern to the
    # collector: the known spellings must be in the table by name.
    assert not KNOWN_CODES - set(documented), sorted(KNOWN_CODES - set(documented))


def test_the_api_guide_lists_no_code_the_source_cannot_raise() -> None:
    collected = source_error_codes()
    stale = sorted(code for code in documented_codes() if not collected.covers(code))
    assert not stale, "docs/api.md documents codes nothing raises: " + ", ".join(stale)


def test_the_api_guide_gives_each_code_its_status() -> None:
    documented = documented_codes()
    wrong = sorted(
        f"{r.code}: {r.status} ({r.where}) not in {documented[r.code]!r}"
        for r in source_error_codes().raised
        if not r.pattern and r.status is not None and r.code in documented
        if not _mentions(documented[r.code], str(r.status))
    )
    assert not wrong, "\n".join(wrong)


def test_the_collector_reads_every_code_argument_and_finds_the_known_codes() -> None:
    collected = source_error_codes()
    assert not collected.unresolved, "\n".join(collected.unresolved)
    missing = sorted(code for code in KNOWN_CODES if not collected.covers(code))
    assert not missing, f"the collector did not find {missing}"


def test_the_collector_follows_names_branches_dicts_and_defaults() -> None:
    source = """
class VerifydError(Exception): status = 400
class Gone(VerifydError): status = 410
class Limited(Gone): pass

TABLE = {404: ("from_table", "t"), 405: ("other_row", "t")}

def problem(status, code, title): ...

def hit(code="default_kw"):
    raise Limited(code, "x")

def f(kind, exc, status):
    code = "branch_a" if kind else f"made_{kind}"
    raise Gone(code, "d")
    raise Gone.field("via_field", "f", "m")
    name, title = TABLE.get(status, ("fallback", "t"))
    problem(status, name, title)
    problem(500, "literal_500", "t")
    hit(code="keyword_code")
    raise Gone(exc.code, "passed through")

def g(thing):
    raise Gone(thing(), "unknowable")
"""
    collected = collect_error_codes({"sample.py": source})
    assert collected.codes == {
        "default_kw",
        "branch_a",
        "via_field",
        "from_table",
        "other_row",
        "fallback",
        "literal_500",
        "keyword_code",
    }
    assert collected.patterns == {"made_[a-z0-9_]+"}
    status = {r.code: r.status for r in collected.raised}
    assert (status["branch_a"], status["default_kw"], status["literal_500"]) == (410, 410, 500)
    assert len(collected.unresolved) == 1 and "thing()" in collected.unresolved[0]


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_with_its_default(name: str) -> None:
    variable = f"VERIFYD_{name.upper()}"
    rows = [
        line
        for line in settings_section().splitlines()
        if line.startswith("|") and _mentions(line, variable)
    ]
    assert rows, f"README.md's settings table does not list {variable}"
    shown = shown_default(Settings.model_fields[name].get_default(call_default_factory=True))
    if shown is not None:
        assert any(_mentions(row, shown) for row in rows), (
            f"README.md's row for {variable} does not give its default {shown!r}"
        )
