"""`python -m shop SERVICE [--host H] [--port N]`: serve one shop service."""

from __future__ import annotations

import argparse
import sys

from shop import SERVICES
from shop.settings import DEFAULT_PORTS, ShopConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop", description="Serve one shop service.")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: 8200 + the service's index")
    args = parser.parse_args(argv)
    from shop.server import serve

    try:
        return serve(args.service, args.host, args.port or DEFAULT_PORTS[args.service])
    except ShopConfigError as exc:
        print(f"shop {args.service}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
