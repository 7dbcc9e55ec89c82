"""`python -m shop SERVICE [--host H] [--port N]`: serve one shop service.
`python -m shop releases [--json]`: the releases SHOP_VERSION may name."""

from __future__ import annotations

import argparse
import sys

from shop import SERVICES
from shop.releases import describe_releases
from shop.settings import DEFAULT_PORTS, ShopConfigError


def main(argv: list[str] | None = None) -> int:
    args_given = sys.argv[1:] if argv is None else argv
    if args_given[:1] == ["releases"]:
        return releases(args_given[1:])
    parser = argparse.ArgumentParser(
        prog="python -m shop", description="Serve one shop service.",
        epilog="`python -m shop releases` lists the releases SHOP_VERSION may name.")
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: 8200 + the service's index")
    args = parser.parse_args(args_given)
    from shop.server import serve

    try:
        return serve(args.service, args.host, args.port or DEFAULT_PORTS[args.service])
    except ShopConfigError as exc:
        print(f"shop {args.service}: {exc}", file=sys.stderr)
        return exc.exit_code


def releases(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop releases",
                                     description="The releases SHOP_VERSION may name, with what each does.")
    parser.add_argument("--json", action="store_true", help="a JSON list of {name, description}")
    args = parser.parse_args(argv)
    print(describe_releases(as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
