"""The `vigilus` command (a console script installed into the venv): `manage.py` for users.

`vigilus task "..."`, `vigilus jit approve 12`, `vigilus providers add ...`, `vigilus backup`: every management
command, from any current directory. The settings module is set here, and everything the settings find (the
project's templates, the Procfile) is located from the installed package, never from the working directory.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigilus.settings")
    from django.core.management import execute_from_command_line

    args = sys.argv[1:] if argv is None else argv
    # Django names the program after argv[0] in its help ("Type 'vigilus help <subcommand>'").
    execute_from_command_line(["vigilus", *args])


if __name__ == "__main__":
    main()
