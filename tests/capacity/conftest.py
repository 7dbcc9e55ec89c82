"""The shop the capacity tests load: the shop tests' own running stack on PostgreSQL and Redis."""

from tests.shop.conftest import running_shop, shop, shop_database, shop_logs, shop_redis

__all__ = ["running_shop", "shop", "shop_database", "shop_logs", "shop_redis"]
