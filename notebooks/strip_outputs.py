"""Clear outputs and execution counts so committed notebooks diff as code, not as results.

    .venv/bin/python notebooks/strip_outputs.py             # every notebook in notebooks/
    .venv/bin/python notebooks/strip_outputs.py a.ipynb ... # only these

tests/test_notebooks.py fails when a committed notebook still holds outputs.
"""

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Clear the notebook in place; True if anything changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs = []
            cell.execution_count = None
            changed = True
    for key in ("widgets", "execution"):
        if notebook.metadata.pop(key, None) is not None:
            changed = True
    if changed:
        nbformat.write(notebook, path)
    return changed


def main(arguments: list[str]) -> None:
    paths = [Path(a) for a in arguments] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for path in paths:
        print(f"{path}: {'stripped' if strip(path) else 'already clean'}")


if __name__ == "__main__":
    main(sys.argv[1:])
