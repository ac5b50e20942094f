"""Run by infra/.venv/bin/python (not by pytest): the Bicep parsers live in the infra tools
environment, so the tests ask this script and read its JSON answer on stdout.

    bicep_tools.py syntax FILE...   {file: [problems]}: tree-sitter-bicep ERROR / MISSING nodes
    bicep_tools.py tree FILE...     {file: pycep-parser JSON tree} (or {"error": message})
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def syntax_problems(path: Path) -> list[str]:
    import tree_sitter
    import tree_sitter_bicep

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    tree = parser.parse(path.read_bytes())
    problems: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, column = node.start_point
            kind = "missing " + node.type if node.is_missing else "unexpected"
            text = node.text.decode(errors="replace")[:60] if node.text else ""
            problems.append(f"{path}:{row + 1}:{column + 1}: {kind} {text!r}")
        stack.extend(node.children)
    return problems


def json_tree(path: Path) -> dict:
    from pycep import BicepParser

    try:
        return BicepParser().parse(file_path=path)
    except Exception as error:  # the parser raises lark's exceptions, whose text says where
        return {"error": f"{type(error).__name__}: {error}"}


def main(argv: list[str]) -> int:
    command, files = argv[0], [Path(name) for name in argv[1:]]
    handler = {"syntax": syntax_problems, "tree": json_tree}[command]
    json.dump({str(path): handler(path) for path in files}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
