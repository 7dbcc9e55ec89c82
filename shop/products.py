"""The seeded catalog: a few hundred products built from word lists with a fixed generator,
so every shop (and the traffic generator's search terms) sees the same catalog."""

from __future__ import annotations

import random
from typing import Any

CATEGORIES: dict[str, tuple[str, ...]] = {
    "apparel": ("T-Shirt", "Hoodie", "Jacket", "Scarf", "Beanie", "Sweater", "Raincoat"),
    "footwear": ("Sneakers", "Boots", "Sandals", "Loafers", "Slippers"),
    "kitchen": ("Kettle", "Skillet", "Teapot", "Knife Set", "Cutting Board", "Mug"),
    "home": ("Lamp", "Blanket", "Cushion", "Rug", "Vase", "Clock"),
    "outdoor": ("Tent", "Backpack", "Water Bottle", "Hammock", "Lantern"),
    "office": ("Notebook", "Desk Organizer", "Fountain Pen", "Monitor Stand"),
}
ADJECTIVES = ("Classic", "Modern", "Rustic", "Compact", "Deluxe", "Everyday", "Vintage", "Urban",
              "Nordic", "Travel")
MATERIALS = ("Cotton", "Wool", "Leather", "Bamboo", "Steel", "Ceramic", "Linen", "Oak", "Canvas",
             "Copper")
COLOURS = ("black", "white", "navy", "olive", "sand", "crimson", "slate", "teal")

# Words that search finds (they occur in names) and words it does not.
SEARCH_HITS = tuple(sorted({w.split()[0].lower() for names in CATEGORIES.values() for w in names}
                           | {m.lower() for m in MATERIALS} | {a.lower() for a in ADJECTIVES}))
SEARCH_MISSES = ("unicorn", "zeppelin", "quasar", "xylophone", "gizmo-9000", "platypus", "mithril")

PRODUCT_COUNT = 300
_CATALOG_SEED = 20240601


def generate_products(count: int = PRODUCT_COUNT) -> list[dict[str, Any]]:
    """`count` product rows (without ids); the same rows on every call."""
    rng = random.Random(_CATALOG_SEED)
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    categories = sorted(CATEGORIES)
    while len(rows) < count:
        category = rng.choice(categories)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(CATEGORIES[category])}"
        if name in seen:
            continue
        seen.add(name)
        colour = rng.choice(COLOURS)
        rows.append({
            "sku": f"{category[:3].upper()}-{len(rows) + 1:05d}",
            "name": name,
            "description": f"{name} in {colour}, from the {category} range.",
            "category": category,
            "price_cents": rng.randrange(5, 250) * 100 - 1,
        })
    return rows
