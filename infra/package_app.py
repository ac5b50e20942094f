"""Build the Function App's deployment package: a zip of the repository's files (tracked and
untracked, less what git ignores) without what `.funcignore` leaves out, as Core Tools' publish
would. The remote build on Azure installs requirements.txt, so no dependency goes in the zip.

    python3 infra/package_app.py OUTPUT.zip

Standard library only: it runs with any Python 3 where infra/deploy.sh runs.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("function_app.py", "host.json", "requirements.txt")
# Never deployed, whatever .funcignore says: local settings, caches, virtual environments.
ALWAYS_EXCLUDED = ("local.settings.json", "__pycache__", "*.pyc", ".venv*", ".git", "node_modules", ".local")


def ignore_patterns(root: Path) -> list[str]:
    funcignore = root / ".funcignore"
    lines = funcignore.read_text().splitlines() if funcignore.exists() else []
    patterns = [line.strip().rstrip("/") for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [*patterns, *ALWAYS_EXCLUDED]


def is_excluded(relative: str, patterns: list[str]) -> bool:
    """gitignore-style enough for .funcignore: a pattern matches the whole path or any one part."""
    parts = relative.split("/")
    for pattern in patterns:
        anchored = pattern.lstrip("/")
        if fnmatch.fnmatchcase(relative, anchored) or fnmatch.fnmatchcase(relative, f"{anchored}/*"):
            return True
        if "/" not in anchored and any(fnmatch.fnmatchcase(part, anchored) for part in parts):
            return True
    return False


def candidate_files(root: Path) -> list[str]:
    try:
        listed = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
            check=True, capture_output=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
    return sorted({name for name in names if (root / name).is_file()})


def build(output: Path, root: Path = ROOT) -> list[str]:
    patterns = ignore_patterns(root)
    files = [name for name in candidate_files(root) if not is_excluded(name, patterns)]
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise SystemExit(f"package_app: {', '.join(missing)} missing from {root}")
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(root / name, name)
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    files = build(Path(argv[0]))
    print(f"package_app: {len(files)} files in {argv[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
