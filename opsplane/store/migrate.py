"""`python -m opsplane.store.migrate`: open the store named by OPSPLANE_DATABASE_URL (or the
default) and bring its schema up to date, then exit.

`Store.open_migrated_apart` runs this in a child process, so a long-running process such as
`serve` never imports what a one-time migration needs (Alembic, Mako and the migration
scripts: about 10 MB that would stay for the life of the process). The URL travels in the
environment, never on the command line where `ps` shows it.
"""

from __future__ import annotations

import sys

from opsplane.errors import StoreError
from opsplane.store.db import Store


def main() -> int:
    try:
        Store.open().close()
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code  # 2, or 3 for a place that cannot hold a store
    return 0


if __name__ == "__main__":
    sys.exit(main())
